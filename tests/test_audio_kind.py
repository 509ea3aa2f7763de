"""The audio kind: decoding, triplet fingerprints, compare and segments, on generated media.

Signals are synthetic and seeded: melodies (random notes with harmonics, envelopes and chords), chirps,
noise bursts, and the degenerate inputs that must never match (silence, a pure tone, white noise, clicks).
Files are written with soundfile (WAV/FLAC/OGG) and PyAV (MP3, AAC in M4A, a video-only MP4).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, NoStream, UnsupportedMedia
from shared.kinds import get_kind
from shared.kinds.audio import KIND, AudioFingerprint, fingerprint_samples
from shared.kinds.audio.peaks import ROW_BYTES
from shared.protocol import LocalMedia, Match
from shared.settings import AudioSettings, Settings
from shared.sniff import sniff

SR = 22050
SETTINGS = Settings()


# -- generated signals ---------------------------------------------------------------------------------
def melody(seed: int, duration_s: float, sr: int = SR, pitch: float = 1.0, stretch: float = 1.0) -> np.ndarray:
    """Random notes (1-3 at once) with 5 harmonics, a 10 ms attack and an exponential decay.

    ``pitch`` multiplies every frequency and ``stretch`` every duration (note lengths and envelopes), so the
    same seed played with ``pitch=1.1`` is an exact pitch shift and with ``stretch=1.1`` an exact tempo change.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    out = np.zeros(n + 2 * sr, np.float64)
    t0 = 0.0
    while t0 < duration_s:
        note_s = float(rng.choice([0.125, 0.25, 0.375, 0.5])) * stretch
        for midi in rng.integers(45, 90, size=int(rng.integers(1, 4))):
            f = pitch * 440.0 * 2 ** ((midi - 69) / 12)
            t = np.arange(int((note_s + 0.15 * stretch) * sr)) / sr
            env = np.minimum(t / (0.01 * stretch), 1.0) * np.exp(-t / stretch * rng.uniform(3, 9))
            harmonics = [
                0.6**k * np.sin(2 * np.pi * (k + 1) * f * t + rng.uniform(0, 6.28)) for k in range(5)
            ]
            start = int(t0 * sr)
            out[start : start + t.size] += env * np.sum(harmonics, axis=0)
        t0 += note_s
    return (0.5 * out[:n] / np.abs(out[:n]).max()).astype(np.float32)


def chirp(duration_s: float, f0_hz: float = 200.0, f1_hz: float = 3000.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(duration_s * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * (f0_hz * t + 0.5 * (f1_hz - f0_hz) / duration_s * t * t))).astype(
        np.float32
    )


def noise(seed: int, duration_s: float, sr: int = SR) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(duration_s * sr))).astype(np.float32)


def scene(seed: int, duration_s: float, sr: int = SR) -> np.ndarray:
    """A melody with a chirp and a few noise bursts mixed in: "unrelated audio" around an excerpt."""
    rng = np.random.default_rng(seed + 1000)
    x = melody(seed, duration_s, sr)
    x[: 3 * sr] += 0.5 * chirp(3.0, 300.0, 2500.0, sr)[: x.size]
    for start in rng.uniform(0, duration_s - 1, size=4):
        s = int(start * sr)
        x[s : s + sr // 4] += 0.2 * noise(int(start * 10), 0.25, sr)[: x[s : s + sr // 4].size]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def tone(duration_s: float, f_hz: float = 440.0, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f_hz * np.arange(int(duration_s * sr)) / sr)).astype(np.float32)


def clicks(duration_s: float, period_s: float = 0.5, sr: int = SR) -> np.ndarray:
    x = np.zeros(int(duration_s * sr), np.float32)
    x[:: int(period_s * sr)] = 0.9
    return x


# -- files -----------------------------------------------------------------------------------------------
def media(path: Path) -> LocalMedia:
    data = path.read_bytes()
    return LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), sniff(data[:64]) or "")


def write_sf(path: Path, x: np.ndarray, sr: int = SR) -> LocalMedia:
    sf.write(path, x, sr)
    return media(path)


def write_av(path: Path, x: np.ndarray, codec: str, rate_hz: int, bit_rate: int, sr: int = SR) -> LocalMedia:
    """Encode mono ``x`` with PyAV, resampling to ``rate_hz`` (the container follows the file name)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate_hz, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate_hz)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return media(path)


def fp_file(m: LocalMedia) -> AudioFingerprint:
    fingerprint = KIND.fingerprint(m, SETTINGS)
    assert isinstance(fingerprint, AudioFingerprint)
    return fingerprint


def matches(m: Match) -> bool:
    return m.similarity_score >= SETTINGS.audio.match_threshold


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def source(files: Path) -> tuple[np.ndarray, AudioFingerprint]:
    x = melody(7, 30.0)
    return x, fp_file(write_sf(files / "source.wav", x))


# -- the kind and its registry ---------------------------------------------------------------------------
def test_registry_and_accepts() -> None:
    assert get_kind("audio") is KIND
    assert KIND.name == "audio"
    assert KIND.accepts("audio/mpeg") and KIND.accepts("audio/flac") and KIND.accepts("video/mp4")
    assert not KIND.accepts("image/png") and not KIND.accepts("text/plain")


# -- matching ---------------------------------------------------------------------------------------------
def test_self_match(source: tuple[np.ndarray, AudioFingerprint]) -> None:
    _, fp = source
    m = KIND.compare(fp, fp, SETTINGS)
    assert m.similarity_score > 0.99 and m.confidence == "high" and not m.warnings
    (seg,) = m.segments
    assert seg.source_start_s == seg.target_start_s < 0.5
    assert seg.source_end_s > fp.duration_s - 1.0
    assert m.details["offsets_s"] == [0.0] and m.details["time_scale"] == 1.0 and m.details["pitch_factor"] == 1.0
    assert m.details["aligned_hashes"] >= 0.9 * fp.n_hashes


@pytest.mark.parametrize(
    ("name", "codec", "rate_hz", "bit_rate"),
    [
        ("low.mp3", "libmp3lame", 8000, 16000),
        ("low.m4a", "aac", 8000, 12000),
        ("low.opus.ogg", "libopus", 8000, 8000),
    ],
)
def test_lossy_reencode_at_8khz_matches(
    files: Path,
    source: tuple[np.ndarray, AudioFingerprint],
    name: str,
    codec: str,
    rate_hz: int,
    bit_rate: int,
) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"no {codec} encoder in this FFmpeg build")
    x, fp = source
    copy = fp_file(write_av(files / name, x, codec, rate_hz, bit_rate))
    m = KIND.compare(fp, copy, SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert abs(seg.target_start_s - seg.source_start_s) < 0.2  # codec delay only
    assert seg.duration_s > 25.0


@pytest.mark.parametrize("suffix", ["flac", "ogg"])
def test_soundfile_formats_quiet_and_noisy_copies_match(
    files: Path, source: tuple[np.ndarray, AudioFingerprint], suffix: str
) -> None:
    x, fp = source
    quiet_noisy = 0.25 * x + 0.02 * noise(5, x.size / SR)  # -12 dB, with noise about 15 dB below the music
    m = KIND.compare(fp, fp_file(write_sf(files / f"noisy.{suffix}", quiet_noisy)), SETTINGS)
    assert matches(m), m.details


def test_excerpt_is_located(files: Path, source: tuple[np.ndarray, AudioFingerprint]) -> None:
    x, full = source
    excerpt = x[5 * SR : 15 * SR]
    target = scene(99, 40.0)
    target[int(17.3 * SR) : int(17.3 * SR) + excerpt.size] = excerpt
    target_fp = fp_file(write_av(files / "excerpt_in_scene.mp3", target, "libmp3lame", 22050, 64000))
    m = KIND.compare(fp_file(write_sf(files / "excerpt.wav", excerpt)), target_fp, SETTINGS)
    assert matches(m) and m.confidence == "high", m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(0.0, abs=0.5)
    assert seg.target_start_s == pytest.approx(17.3, abs=0.5)
    assert seg.target_end_s == pytest.approx(27.3, abs=0.5)
    # From the full source, the segment starts 5 s into it.
    (seg,) = KIND.compare(full, target_fp, SETTINGS).segments
    assert seg.source_start_s == pytest.approx(5.0, abs=0.5)
    assert seg.target_start_s == pytest.approx(17.3, abs=0.5)


def test_excerpt_used_twice_gives_two_segments(
    files: Path, source: tuple[np.ndarray, AudioFingerprint]
) -> None:
    x, _ = source
    excerpt = x[5 * SR : 15 * SR]
    target = scene(98, 40.0)
    for start_s in (2.0, 24.5):
        target[int(start_s * SR) : int(start_s * SR) + excerpt.size] = excerpt
    m = KIND.compare(
        fp_file(write_sf(files / "ex2.wav", excerpt)),
        fp_file(write_sf(files / "twice.wav", target)),
        SETTINGS,
    )
    assert matches(m)
    assert [s.target_start_s for s in m.segments] == [
        pytest.approx(2.0, abs=0.5),
        pytest.approx(24.5, abs=0.5),
    ]
    assert all(s.source_start_s < 0.5 and s.score > 0.5 for s in m.segments)
    assert len(m.details["offsets_s"]) == 2


def test_reordered_halves_give_two_segments(source: tuple[np.ndarray, AudioFingerprint]) -> None:
    x, fp = source
    swapped = fingerprint_samples(_to_8k(np.concatenate([x[15 * SR :], x[: 15 * SR]])))
    m = KIND.compare(fp, swapped, SETTINGS)
    assert matches(m)
    pairs = sorted((round(s.source_start_s), round(s.target_start_s)) for s in m.segments)
    assert pairs == [(0, 15), (15, 0)]


def test_a_cut_inside_a_held_chord_starts_at_the_cut() -> None:
    """No onset follows the cut for 2 s; the sustain maxima still place the segment's start at the cut."""
    chord = sum(tone(8.0, f) for f in (261.6, 329.6, 392.0, 523.3)) * np.exp(-0.1 * np.arange(8 * SR) / SR)
    x = np.concatenate([melody(5, 10.0), (0.2 * chord).astype(np.float32), melody(6, 10.0)])
    excerpt = x[16 * SR : 26 * SR]  # 6 s into the 8 s chord, then 8 s of melody
    target = scene(95, 30.0)
    target[7 * SR : 7 * SR + excerpt.size] = excerpt
    m = KIND.compare(fingerprint_samples(_to_8k(x)), fingerprint_samples(_to_8k(target)), SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(16.0, abs=0.5) and seg.target_start_s == pytest.approx(7.0, abs=0.5)


def test_an_excerpt_that_begins_in_a_pause_starts_at_the_cut() -> None:
    """The excerpt opens with 1.5 s of near-silence (no peak, no sustain maximum): the frame rows still
    place the start at the cut, where the louder filler ends, and the end where the filler resumes."""
    rng = np.random.default_rng(3)
    pause = (1e-4 * rng.standard_normal(int(1.5 * SR))).astype(np.float32)
    x = np.concatenate([melody(5, 10.0), pause, melody(6, 10.0)])
    excerpt = x[10 * SR : 18 * SR]  # the pause, then 6.5 s of melody
    target = scene(95, 30.0)
    target[7 * SR : 7 * SR + excerpt.size] = excerpt
    m = KIND.compare(fingerprint_samples(_to_8k(x)), fingerprint_samples(_to_8k(target)), SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(10.0, abs=0.5) and seg.target_start_s == pytest.approx(7.0, abs=0.5)
    assert seg.source_end_s == pytest.approx(18.0, abs=0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_excerpt_that_begins_in_a_pause_under_added_noise_starts_at_the_cut(seed: int) -> None:
    """As above, with white noise added to the copy at 10 dB SNR: the pause's rows are noise in the target, so
    they cannot agree, but they are masked (the source far quieter than the target's noise floor, which holds
    no tone), and the start is still the cut. Without the masking, it is the first note, 1.5 s late."""
    rng = np.random.default_rng(seed)
    pause = (1e-4 * rng.standard_normal(int(1.5 * SR))).astype(np.float32)
    x = np.concatenate([melody(5 + seed, 10.0), pause, melody(6 + seed, 10.0)])
    excerpt = x[10 * SR : 20 * SR].copy()
    rms = float(np.sqrt(np.mean(excerpt.astype(np.float64) ** 2)))
    excerpt += (rms / 10 ** (10 / 20) / 0.3) * noise(50 + seed, excerpt.size / SR)
    target = scene(95 + seed, 30.0)
    target[7 * SR : 7 * SR + excerpt.size] = excerpt
    m = KIND.compare(fingerprint_samples(_to_8k(x)), fingerprint_samples(_to_8k(target)), SETTINGS)
    assert matches(m), m.details
    seg = max(m.segments, key=lambda s: s.duration_s)
    assert seg.source_start_s == pytest.approx(10.0, abs=0.5) and seg.target_start_s == pytest.approx(7.0, abs=0.5)


def test_a_pause_before_the_copy_does_not_reach_into_quiet_music_before_the_cut() -> None:
    """The copy starts at the note after a source pause, and the target has quieter music (-14 dB) before the cut:
    those rows are louder than the pause and at the target's floor, but they hold notes, so they are not masked
    and the start stays at the cut."""
    rng = np.random.default_rng(4)
    pause = (1e-4 * rng.standard_normal(int(1.5 * SR))).astype(np.float32)
    x = np.concatenate([melody(5, 10.0), pause, melody(6, 10.0)])
    excerpt = x[int(11.5 * SR) : 20 * SR]
    target = (0.2 * scene(95, 30.0)).astype(np.float32)
    target[7 * SR : 7 * SR + excerpt.size] = excerpt
    m = KIND.compare(fingerprint_samples(_to_8k(x)), fingerprint_samples(_to_8k(target)), SETTINGS)
    assert matches(m), m.details
    seg = max(m.segments, key=lambda s: s.duration_s)
    assert seg.source_start_s == pytest.approx(11.5, abs=0.5) and seg.target_start_s == pytest.approx(7.0, abs=0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_an_excerpt_that_fades_in_over_a_held_chord_starts_at_the_cut(seed: int) -> None:
    """The copy opens with 5 s of held chord (no onset, no triplet) faded in from -15 dB over 4 s. The frame
    rows place the start at the cut: the gain follows the fade, and the edge is where the rows' agreement sum
    peaks, not where the first few rows in a row disagree (the earlier walk stopped 2.3-2.7 s late here)."""
    chord_s = 5.0
    t = np.arange(int(chord_s * SR)) / SR
    chord = sum(tone(chord_s, f) for f in (261.6, 329.6, 392.0, 523.3)) * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    x = np.concatenate([melody(5 + seed, 10.0), (0.15 * chord).astype(np.float32), melody(6 + seed, 10.0)])
    excerpt = x[10 * SR : int((16 + chord_s) * SR)].copy()
    excerpt[: 4 * SR] *= 10 ** (np.linspace(-15.0, 0.0, 4 * SR) / 20)
    target = scene(95 + seed, 30.0)
    target[7 * SR : 7 * SR + excerpt.size] = excerpt
    m = KIND.compare(fingerprint_samples(_to_8k(x)), fingerprint_samples(_to_8k(target)), SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(10.0, abs=0.5) and seg.target_start_s == pytest.approx(7.0, abs=0.5)


def test_a_segment_inside_a_stronger_one_on_a_nearby_line_is_dropped() -> None:
    """A line of a slightly different slope through part of a copy (0.1-0.23 s off the copy's own line) repeats
    that part; a second use of the source (30 s away) is a segment of its own."""
    from shared.kinds.audio.hough import Line
    from shared.kinds.audio.match import _inside, _Run
    from shared.protocol import Segment

    frame_s = 0.016
    frames = 1.0 / frame_s
    none = np.zeros(0, np.int64)

    def run(scale: float, offset_s: float, start_s: float, end_s: float, evidence: float) -> tuple[Segment, _Run]:
        line = Line(scale, offset_s * frames, 0.0, none)
        seg = Segment(start_s, end_s, scale * start_s + offset_s, scale * end_s + offset_s, 1.0)
        return seg, _Run(line, start_s * frames, end_s * frames, evidence, 10)

    copy = run(1.0, 0.0, 60.0, 300.0, 500.0)
    fringe = run(0.997, 0.46, 189.7, 236.1, 40.0)  # 0.11 s off at its start, 0.25 s at its end
    second_use = run(1.0, -30.0, 200.0, 230.0, 40.0)
    assert _inside(*fringe, *copy, frame_s)
    assert not _inside(*copy, *fringe, frame_s)  # the stronger one stays
    assert not _inside(*second_use, *copy, frame_s)


def test_a_chance_pair_ahead_of_a_run_does_not_move_its_edge() -> None:
    """Edges are refined from a run's core: a lone pair 3.5 s before it (on the line, within the 4 s gap a
    run tolerates, 7x the run's median gap) is left out, so the rows, not that pair, decide how far the
    start reaches."""
    from shared.kinds.audio.hough import Pairs
    from shared.kinds.audio.match import _core

    fp = fingerprint_samples(_to_8k(melody(1, 12.0)))
    frames_per_s = 1.0 / fp.frame_s
    ts = np.array([2.0, 5.5, 5.7, 6.0, 6.4, 7.0, 8.0, 8.3, 8.9]) * frames_per_s
    n = ts.size
    src = np.zeros(n, np.int64)  # the spans of triplet 0, whatever it is
    pairs = Pairs(src, src, np.ones(n), ts, ts, np.zeros(n), np.zeros(n), np.zeros(n))
    span = float(fp.spans[0])
    start, end = _core(np.arange(n), pairs, fp, float(ts.min()), float(ts.max()) + span)
    assert start == pytest.approx(5.5 * frames_per_s) and end == pytest.approx(8.9 * frames_per_s + span)
    start, _ = _core(np.arange(2), pairs, fp, 0.0, 1.0)  # too sparse for a core: the span stays
    assert start == 0.0


def test_calm_sparse_music_matches_but_noise_is_not_tonal(files: Path) -> None:
    """Slow notes give ~3 triplets a second, under the rate floor that keeps noise out; their sustain
    maxima continue from row to row (noise's do not), so an excerpt still matches, at the right place."""
    import dataclasses

    from shared.kinds.audio.tonal import continued_share

    calm = melody(11, 40.0, stretch=4.0)
    full = fingerprint_samples(_to_8k(calm))
    assert full.n_hashes / full.duration_s < SETTINGS.audio.min_hash_rate_per_s
    assert continued_share(full, 0.0, 1e9) > 0.8
    for other in (noise(3, 20.0), clicks(20.0)):
        assert continued_share(fingerprint_samples(_to_8k(other)), 0.0, 1e9) < 0.05
    excerpt = calm[10 * SR : 22 * SR]
    target = scene(94, 30.0)
    target[8 * SR : 8 * SR + excerpt.size] = 0.5 * excerpt
    target_fp = fp_file(write_av(files / "calm_in_scene.mp3", target, "libmp3lame", 22050, 64000))
    m = KIND.compare(full, target_fp, SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(10.0, abs=0.5) and seg.target_start_s == pytest.approx(8.0, abs=0.5)
    rate_only = dataclasses.replace(SETTINGS, audio=dataclasses.replace(SETTINGS.audio, min_continued_share=2.0))
    assert not KIND.compare(full, target_fp, rate_only).segments  # the rate floor alone drops it


def test_the_frame_rows_alone_find_a_copy_the_triplets_miss(files: Path) -> None:
    """With triplet runs turned off (``min_run_evidence`` out of reach), an MP3 copy inside other music is
    still found, at the right place, by the rows stage (``row_lines``); with that stage off too, nothing is.
    Identical white noise, a tone and clicks give no rows-only run even against themselves."""
    import dataclasses

    x = melody(21, 40.0, stretch=2.0)
    excerpt = x[12 * SR : 22 * SR]
    target = scene(93, 30.0)
    target[9 * SR : 9 * SR + excerpt.size] = 0.7 * excerpt
    target_fp = fp_file(write_av(files / "rows_only.mp3", target, "libmp3lame", 22050, 64000))
    full = fingerprint_samples(_to_8k(x))
    rows_only = dataclasses.replace(SETTINGS.audio, min_run_evidence=1e9)
    m = KIND.compare(full, target_fp, dataclasses.replace(SETTINGS, audio=rows_only))
    assert matches(m), m.details
    seg = max(m.segments, key=lambda s: s.score)
    assert seg.source_start_s == pytest.approx(12.0, abs=0.5) and seg.target_start_s == pytest.approx(9.0, abs=0.5)
    assert m.details["aligned_hashes"] == 0  # no triplet took part
    off = dataclasses.replace(rows_only, row_line_evidence=0.0)
    assert not KIND.compare(full, target_fp, dataclasses.replace(SETTINGS, audio=off)).segments
    for make in (lambda: noise(3, 20.0), lambda: tone(20.0), lambda: clicks(20.0, period_s=0.037)):
        fp = fp_file(write_sf(files / "rows_only_degenerate.wav", make()))
        assert not KIND.compare(fp, fp, dataclasses.replace(SETTINGS, audio=rows_only)).segments


def test_row_votes_with_a_single_offset() -> None:
    """Two distinct rows equal on both sides vote twice for one offset and nothing else (a regression: the
    smoothing of the votes once read past a vote array shorter than 3 and crashed a catalog benchmark)."""
    import dataclasses

    from shared.kinds.audio import row_lines
    from shared.kinds.audio.edges import _shape_bits

    fp = fingerprint_samples(_to_8k(melody(2, 3.0)))
    loud = fp.rows[fp.rows[:, 0] >= np.median(fp.rows[:, 0])]
    keys = _shape_bits(loud, 0)
    pair = loud[[0, int(np.nonzero(keys != keys[0])[0][0])]]
    two = dataclasses.replace(fp, rows=pair.copy())
    (line,) = row_lines.candidate_lines(two, two)
    assert line.offset_frames == 0.0 and line.scale == 1.0


@pytest.mark.parametrize(("pitch", "stretch"), [(1.1, 1.0), (0.92, 1.0), (1.0, 1.08)])
def test_a_copy_whose_triplets_make_no_line_is_found_by_a_weak_line(
    monkeypatch: pytest.MonkeyPatch, pitch: float, stretch: float
) -> None:
    """Where no Hough cell reaches ``MIN_CELL_VOTES`` (a pitch-shifted copy that keeps a few, mostly repeated
    triplets), the pairs binned by pitch too propose a weak line (``hough.weak_lines``) that the frame rows
    confirm along its scale and pitch (``row_lines.segment``); with the rows-only stage off nothing is found,
    and unrelated music gives no such run."""
    import dataclasses

    from shared.kinds.audio import hough

    full = fingerprint_samples(_to_8k(melody(7, 30.0)))
    changed = melody(7, 30.0 * stretch, pitch=pitch, stretch=stretch)
    excerpt = changed[int(5 * stretch * SR) : int(15 * stretch * SR)]
    target = scene(97, 12.0 + 10.0 * stretch + 10.0)
    target[12 * SR : 12 * SR + excerpt.size] = excerpt
    target_fp = fingerprint_samples(_to_8k(target))
    monkeypatch.setattr(hough, "MIN_CELL_VOTES", 1e9)  # no strong line: only the weak stage can find it
    m = KIND.compare(full, target_fp, SETTINGS)
    assert matches(m), m.details
    seg = max(m.segments, key=lambda s: s.score)
    assert seg.source_start_s == pytest.approx(5.0, abs=0.5) and seg.target_start_s == pytest.approx(12.0, abs=0.5)
    assert m.details["aligned_hashes"] == 0  # the rows alone scored it
    assert m.details["pitch_factor"] == pytest.approx(pitch, abs=0.02)
    assert m.details["time_scale"] == pytest.approx(stretch, abs=0.03)
    off = dataclasses.replace(SETTINGS.audio, row_line_evidence=0.0)
    assert not KIND.compare(full, target_fp, dataclasses.replace(SETTINGS, audio=off)).segments
    assert not matches(KIND.compare(full, fingerprint_samples(_to_8k(scene(98, 30.0))), SETTINGS))


def _piece(pitch: float, gap_s: float, insert: np.ndarray | None = None) -> np.ndarray:
    """4 s of melody, a held chord of ``gap_s`` (no onset: no triplet), 12 s of melody; all at ``pitch``."""
    t = np.arange(int(gap_s * SR)) / SR
    pad = sum(np.sin(2 * np.pi * f * pitch * t) for f in (220.0, 277.2, 329.6)) * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    middle = (0.05 * pad).astype(np.float32) if insert is None else insert[: t.size]
    return np.concatenate([melody(21, 4.0, pitch=pitch), middle, melody(22, 12.0, pitch=pitch)])


@pytest.mark.parametrize(("pitch", "gap_s"), [(0.9, 6.0), (0.9, 8.0), (1.1, 5.0), (1.1, 8.0)])
def test_a_copy_with_a_long_gap_in_its_triplets_is_one_segment(pitch: float, gap_s: float) -> None:
    """Pitch-shifted, the held chord holds no triplet for longer than ``max_gap_s``: the two parts of the line
    are still one segment from the first note: the row walk crosses the gap, or the frame rows join the two
    parts across it, or their refined edges meet and the two runs merge. An unrelated insert of the same length in the target gives two segments."""
    import dataclasses

    source = fingerprint_samples(_to_8k(np.concatenate([scene(90, 10.0), _piece(1.0, gap_s)])))
    target = fingerprint_samples(_to_8k(np.concatenate([scene(93, 7.0), _piece(pitch, gap_s), scene(92, 8.0)])))
    m = KIND.compare(source, target, SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(10.0, abs=0.5) and seg.target_start_s == pytest.approx(7.0, abs=0.5)
    assert seg.source_end_s == pytest.approx(26.0 + gap_s, abs=0.5)
    if gap_s == 8.0 and pitch == 1.1:  # here the rows join the parts; without joining they stay apart
        no_join = dataclasses.replace(SETTINGS, audio=dataclasses.replace(SETTINGS.audio, max_join_gap_s=0.0))
        assert len(KIND.compare(source, target, no_join).segments) == 2
    inserted = _piece(pitch, gap_s, insert=0.5 * melody(30, gap_s))
    other = fingerprint_samples(_to_8k(np.concatenate([scene(93, 7.0), inserted, scene(92, 8.0)])))
    m = KIND.compare(source, other, SETTINGS)
    assert [round(s.target_start_s) for s in m.segments][:1] == [7] and len(m.segments) == 2, m.segments


def test_frame_rows_agree_only_along_the_true_line(source: tuple[np.ndarray, AudioFingerprint]) -> None:
    """Aligned copies agree on most frame rows; a wrong offset agrees on few (they are evidence of their own)."""
    from shared.kinds.audio.edges import row_agreement
    from shared.kinds.audio.hough import Line

    x, fp = source
    copy = fingerprint_samples(_to_8k(np.concatenate([np.zeros(2 * SR, np.float32), x])))
    shift = 2.0 / fp.frame_s
    n = fp.rows.shape[0] * 4 - 8.0
    agree, total = row_agreement(fp, copy, Line(1.0, shift, 0.0, np.zeros(0, np.int64)), 0.0, n)
    assert total > 400 and agree > 0.8 * total
    agree, total = row_agreement(fp, copy, Line(1.0, shift + 60.0, 0.0, np.zeros(0, np.int64)), 0.0, n)
    assert agree < 0.2 * total


@pytest.mark.parametrize(
    ("pitch", "stretch"),
    [(1.1, 1.0), (0.9, 1.0), (1.0, 1.1), (1.0, 0.9), (1.1, 1 / 1.1), (0.9, 1 / 0.9), (1.05, 1.0), (1.0, 1.05)],
    ids=["pitch+10", "pitch-10", "tempo-10", "tempo+10", "speed+10", "speed-10", "pitch+5", "tempo-5"],
)
def test_pitch_tempo_and_speed_changes_are_located(
    source: tuple[np.ndarray, AudioFingerprint], pitch: float, stretch: float
) -> None:
    """The source's seconds 5-15, replayed with another pitch and/or tempo, inside unrelated audio at 12 s."""
    _, full = source
    changed = melody(7, 30.0 * stretch, pitch=pitch, stretch=stretch)
    excerpt = changed[int(5 * stretch * SR) : int(15 * stretch * SR)]
    target = scene(97, 12.0 + 10.0 * stretch + 10.0)
    target[12 * SR : 12 * SR + excerpt.size] = excerpt
    m = KIND.compare(full, fingerprint_samples(_to_8k(target)), SETTINGS)
    assert matches(m), m.details
    (seg,) = m.segments
    assert seg.source_start_s == pytest.approx(5.0, abs=0.5) and seg.source_end_s == pytest.approx(15.0, abs=0.5)
    assert seg.target_start_s == pytest.approx(12.0, abs=0.5)
    assert seg.target_end_s == pytest.approx(12.0 + 10.0 * stretch, abs=0.5)
    assert m.details["time_scale"] == pytest.approx(stretch, abs=0.01)
    assert m.details["pitch_factor"] == pytest.approx(pitch, abs=0.01)


def test_beyond_the_search_range_does_not_match(source: tuple[np.ndarray, AudioFingerprint]) -> None:
    """A 25% pitch shift is outside ``max_pitch_factor``: no match, rather than a wrong alignment."""
    x, full = source
    shifted = fingerprint_samples(_to_8k(melody(7, 30.0, pitch=1.25)))
    assert not matches(KIND.compare(full, shifted, SETTINGS))
    wider = Settings(audio=AudioSettings(max_pitch_factor=1.3))
    assert KIND.compare(full, shifted, wider).details["pitch_factor"] == pytest.approx(1.25, abs=0.01)


def test_unrelated_audio_does_not_match() -> None:
    fps = [fingerprint_samples(_to_8k(scene(s, 30.0) if s % 2 else melody(s, 30.0))) for s in range(8)]
    for i, a in enumerate(fps):
        for b in fps[i + 1 :]:
            m = KIND.compare(a, b, SETTINGS)
            assert m.similarity_score < 0.3 and not m.segments, m.details


DEGENERATE = {
    "silence": lambda: np.zeros(20 * SR, np.float32),
    "tone": lambda: tone(20.0),
    "tone_chord": lambda: tone(20.0, 440.0) + tone(20.0, 660.0),
    "white_noise": lambda: noise(3, 20.0),
    "clicks": lambda: clicks(20.0),
    "fast_clicks": lambda: clicks(20.0, period_s=0.037),
}


@pytest.fixture(scope="module")
def degenerate(files: Path) -> dict[str, AudioFingerprint]:
    return {name: fp_file(write_sf(files / f"{name}.wav", make())) for name, make in DEGENERATE.items()}


def test_degenerate_inputs_never_match(
    degenerate: dict[str, AudioFingerprint], source: tuple[np.ndarray, AudioFingerprint]
) -> None:
    others = {
        **degenerate,
        "melody": source[1],
        "noise_other_seed": fingerprint_samples(_to_8k(noise(4, 20.0))),
    }
    for name, a in degenerate.items():
        for other, b in others.items():
            for m in (KIND.compare(a, b, SETTINGS), KIND.compare(b, a, SETTINGS)):
                assert m.similarity_score < 0.1 and not m.segments, (name, other, m.details)


def test_short_input_has_low_confidence_and_a_warning(
    files: Path, source: tuple[np.ndarray, AudioFingerprint]
) -> None:
    x, fp = source
    short = fp_file(write_sf(files / "short.wav", x[3 * SR : 4 * SR]))
    assert short.duration_s == pytest.approx(1.0, abs=0.01)
    for m in (KIND.compare(short, fp, SETTINGS), KIND.compare(short, short, SETTINGS)):
        assert m.confidence == "low"
        assert any("shorter than" in w for w in m.warnings)


def test_score_is_monotone_in_excerpt_length(source: tuple[np.ndarray, AudioFingerprint]) -> None:
    x, fp = source
    scores = [
        KIND.compare(fingerprint_samples(_to_8k(x[: int(s * SR)])), fp, SETTINGS).similarity_score
        for s in (1, 3, 6, 12)
    ]
    assert scores == sorted(scores)


def _to_8k(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(x, 160, 441).astype(np.float32)


# -- decoding, limits and errors ----------------------------------------------------------------------------
def write_video(path: Path, with_audio: bool) -> LocalMedia:
    """A 2 s 64x64 MPEG-4 clip, optionally with an AAC melody track."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=22050, layout="mono") if with_audio else None
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            x = melody(3, 2.0)
            for start in range(0, x.size, 1024):
                frame = av.AudioFrame.from_ndarray(
                    x[None, start : start + 1024], format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = SR, start
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
    return media(path)


def test_video_without_audio_has_no_stream(files: Path) -> None:
    m = write_video(files / "silent_video.mp4", with_audio=False)
    assert m.mime == "video/mp4" and KIND.accepts(m.mime)
    with pytest.raises(NoStream):
        KIND.fingerprint(m, SETTINGS)
    with pytest.raises(NoStream):
        KIND.probe_duration_s(m, SETTINGS)


def test_video_with_audio_is_fingerprinted(files: Path) -> None:
    fp = fp_file(write_video(files / "video_with_audio.mp4", with_audio=True))
    assert fp.duration_s == pytest.approx(2.0, abs=0.1) and fp.n_hashes > 20


@pytest.mark.parametrize("keep_bytes", [100, 2000])
def test_truncated_file_fails_to_decode(
    files: Path, source: tuple[np.ndarray, AudioFingerprint], keep_bytes: int
) -> None:
    whole = write_av(files / "whole.m4a", source[0][: 5 * SR], "aac", 22050, 32000)
    cut = files / f"cut{keep_bytes}.m4a"
    cut.write_bytes(whole.path.read_bytes()[:keep_bytes])  # the moov atom is at the end: it is lost
    with pytest.raises(DecodeFailed):
        KIND.fingerprint(media(cut), SETTINGS)


def test_garbage_and_empty_files(files: Path) -> None:
    garbage = files / "garbage.mp3"
    garbage.write_bytes(b"ID3" + bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    with pytest.raises(DecodeFailed):
        KIND.fingerprint(media(garbage), SETTINGS)
    empty = files / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyMedia):
        KIND.fingerprint(LocalMedia(empty, 0, hashlib.sha256(b"").hexdigest(), "audio/wav"), SETTINGS)


def test_playlists_are_refused(files: Path, source: tuple[np.ndarray, AudioFingerprint]) -> None:
    write_sf(files / "part.wav", source[0][: 2 * SR])
    concat = files / "list.ffconcat"
    concat.write_text("ffconcat version 1.0\nfile part.wav\n")
    hls = files / "list.m3u8"
    hls.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\npart.wav\n#EXT-X-ENDLIST\n")
    for path in (concat, hls):
        for mime in ("", "audio/wav"):  # probed, or forced to the demuxer of the sniffed type
            m = LocalMedia(path, path.stat().st_size, "0" * 64, mime)
            with pytest.raises((DecodeFailed, UnsupportedMedia)):  # refused as a playlist, or unreadable
                KIND.fingerprint(m, SETTINGS)


def test_duration_limit_and_probe(files: Path, source: tuple[np.ndarray, AudioFingerprint]) -> None:
    m = media(files / "source.wav")
    assert KIND.probe_duration_s(m, SETTINGS) == pytest.approx(30.0, abs=0.01)
    tight = Settings(audio=AudioSettings(max_duration_s=10.0))
    with pytest.raises(MediaLimitExceeded):
        KIND.fingerprint(m, tight)
    # Without a duration in the header (raw ADTS AAC), the limit is enforced while decoding.
    adts = write_av(files / "raw.aac", source[0], "aac", 22050, 32000)
    assert adts.mime == "audio/aac"
    with pytest.raises(MediaLimitExceeded):
        KIND.fingerprint(adts, tight)


def test_progress_is_reported(files: Path) -> None:
    fractions: list[float] = []
    KIND.fingerprint(media(files / "source.wav"), SETTINGS, fractions.append)
    assert len(fractions) >= 3 and fractions == sorted(fractions)
    assert 0.0 < fractions[0] and fractions[-1] == 1.0


# -- the fingerprint value ---------------------------------------------------------------------------------
def test_bytes_round_trip_and_size(source: tuple[np.ndarray, AudioFingerprint]) -> None:
    fp = source[1]
    data = fp.to_bytes()
    back = KIND.fingerprint_from_bytes(data)
    assert back == fp and back.to_bytes() == data and back.duration_s == fp.duration_s
    assert np.array_equal(back.hashes, fp.hashes) and np.array_equal(back.peak_bands, fp.peak_bands)
    assert len(data) / (fp.duration_s / 60) < 50_000
    for bad in (data[:-1], data[:10], b"MMFP" + data[4:8] + b"image\0\0\0" + data[20:]):
        with pytest.raises(DecodeFailed):
            AudioFingerprint.from_bytes(bad)


def test_golden_fingerprint(files: Path) -> None:
    """Pinned: any change of decoder, resampler, peak or triplet code that moves a hash shows up here."""
    rate = 8000
    t = np.arange(6 * rate) / rate
    notes = [
        (0.0, 440.0),
        (0.5, 554.4),
        (1.0, 659.3),
        (1.5, 880.0),
        (2.5, 392.0),
        (3.0, 1318.5),
        (4.0, 293.7),
    ]
    x = np.zeros_like(t)
    for start_s, f in notes:
        u = np.clip(t - start_s, 0.0, None)
        x += (t >= start_s) * np.exp(-4.0 * u) * (np.sin(2 * np.pi * f * u) + 0.4 * np.sin(4 * np.pi * f * u))
    path = files / "golden.wav"
    sf.write(path, (0.3 * x / np.abs(x).max()), rate, subtype="PCM_16")
    fp = fp_file(media(path))
    assert (fp.n_hashes, fp.peak_frames.size, fp.sustain.size, fp.rows.shape) == GOLDEN_COUNTS
    assert hashlib.sha256(fp.to_bytes()).hexdigest() == GOLDEN_SHA256


# Two peaks per note (fundamental and octave, 24 bands apart) at frames 0, 29, 61, ...; 92 sustain rows of 2;
# 92 frame rows of 7 bytes (format version 5).
GOLDEN_COUNTS = (14, 14, 184, (92, 7))
GOLDEN_SHA256 = "9e47b027eb0283e3641b2eec41c8adf19528b772c8b6cc7b2d493fd2c266d647"


@pytest.mark.parametrize("block_samples", [700, 8000, 10**7])
def test_streamed_peaks_do_not_depend_on_block_size(
    source: tuple[np.ndarray, AudioFingerprint], block_samples: int
) -> None:
    x = _to_8k(source[0][: 12 * SR])
    reference = fingerprint_samples(x, block_samples=4 * 8000)
    assert fingerprint_samples(x, block_samples=block_samples) == reference


def test_pair_cap_keeps_the_match(
    monkeypatch: pytest.MonkeyPatch, source: tuple[np.ndarray, AudioFingerprint]
) -> None:
    from shared.kinds.audio import hough

    monkeypatch.setattr(hough, "MAX_PAIRS", 300)
    m = KIND.compare(source[1], source[1], SETTINGS)
    assert matches(m) and m.details["aligned_hashes"] <= 300


@settings(max_examples=30, deadline=None)
@given(
    n_peaks=st.integers(0, 50),
    n_hashes=st.integers(0, 80),
    duration_s=st.floats(0, 1e5, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_bytes_round_trip_property(n_peaks: int, n_hashes: int, duration_s: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    fp = AudioFingerprint(
        duration_s=duration_s,
        peak_frames=np.sort(rng.integers(0, 2**32, n_peaks, dtype=np.uint32)),
        peak_bands=rng.integers(0, 2**16, n_peaks, dtype=np.uint16),
        hashes=rng.integers(0, 2**16, n_hashes, dtype=np.uint16),
        hash_frames=rng.integers(0, 2**32, n_hashes, dtype=np.uint32),
        spans=rng.integers(0, 256, n_hashes, dtype=np.uint8),
        anchor_bands=rng.integers(0, 2**16, n_hashes, dtype=np.uint16),
        probes=rng.integers(0, 64, n_hashes, dtype=np.uint8),
        sustain=rng.integers(0, 256, 2 * n_peaks, dtype=np.uint8),
        rows=rng.integers(0, 256, (n_peaks, ROW_BYTES), dtype=np.uint8),
    )
    back = AudioFingerprint.from_bytes(fp.to_bytes())
    assert back == fp and back.duration_s == duration_s
