"""Streamed decoding (``shared.kinds.audio.decode``): FFmpeg's own graph (``amovie`` -> ``aformat`` -> sink).

The samples must be exactly those of the per-frame ``av.AudioResampler`` loop it replaced; the path reaches
FFmpeg verbatim whatever characters it holds; a few corrupt packets are skipped and many fail; memory stays
flat on an hour of audio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from shared.errors import DecodeFailed, EmptyMedia
from shared.kinds.audio import KIND
from shared.kinds.audio.decode import BLOCK_SAMPLES, SAMPLE_RATE_HZ, iter_samples
from shared.settings import Settings
from tests.test_audio_kind import SR, media, melody, write_av

SETTINGS = Settings()


def reference(path: Path) -> np.ndarray:
    """The decode this module used before: PyAV's demux/decode loop and one ``AudioResampler`` per file."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    with av.open(str(path)) as container:
        frames = [*container.decode(audio=0), None]
        chunks = [out.to_ndarray().reshape(-1) for f in frames for out in resampler.resample(f)]
    return np.concatenate(chunks)


def decode(path: Path, mime: str | None) -> np.ndarray:
    return np.concatenate(list(iter_samples(path, mime, 3600.0)))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio_decode")


@pytest.fixture(scope="module")
def mp3(files: Path) -> Path:
    return write_av(files / "clean.mp3", melody(3, 40.0), "libmp3lame", 22050, 64000).path


def corrupt(data: bytes, n: int, seed: int = 0, span: int = 64) -> bytes:
    """``n`` runs of ``span`` random bytes spread over the middle 60% of ``data``."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for pos in np.linspace(len(out) * 0.2, len(out) * 0.8, n).astype(int):
        out[pos : pos + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    return bytes(out)


@pytest.mark.parametrize("name", ["clean.mp3", "stereo.wav", "tone.m4a", "low.ogg"])
def test_samples_and_blocks_are_those_of_the_per_frame_loop(files: Path, mp3: Path, name: str) -> None:
    x = melody(4, 13.0)
    if name == "stereo.wav":  # 44.1 kHz stereo, 16-bit: rate, layout and format all converted
        sf.write(files / name, np.stack([x, 0.5 * x[::-1]], axis=1).repeat(2, axis=0), 2 * SR, subtype="PCM_16")
    elif name == "tone.m4a":
        write_av(files / name, x, "aac", 22050, 48000)
    elif name == "low.ogg":
        sf.write(files / name, x, SR)
    path = files / name
    blocks = list(iter_samples(path, media(path).mime, 3600.0))
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert {b.size for b in blocks[:-1]} == {BLOCK_SAMPLES} and 0 < blocks[-1].size <= BLOCK_SAMPLES
    assert np.array_equal(np.concatenate(blocks), reference(path))


def test_awkward_paths_reach_ffmpeg_verbatim(files: Path, mp3: Path) -> None:
    """Filter options go in as a dictionary, not a filter-graph string: nothing in the path is special."""
    folder = files / "we:ird, 'dir' [1];x=y"
    folder.mkdir()
    for name in ("a b:c,d'e.mp3", "%s\\n;=[x]@é.mp3", "-begins-with-dash.mp3", "file:not-a-url.mp3"):
        path = folder / name
        path.write_bytes(mp3.read_bytes())
        for mime in ("audio/mpeg", None):  # forced demuxer, or probed
            assert np.array_equal(decode(path, mime), decode(mp3, "audio/mpeg")), name


@pytest.mark.parametrize("n_corrupt", [3, 10])
def test_a_few_corrupt_packets_are_skipped(files: Path, mp3: Path, n_corrupt: int) -> None:
    path = files / f"glitched{n_corrupt}.mp3"
    path.write_bytes(corrupt(mp3.read_bytes(), n_corrupt))
    clean, glitched = decode(mp3, "audio/mpeg"), decode(path, "audio/mpeg")
    assert 0.97 * clean.size < glitched.size < clean.size  # some frames were dropped, the rest decoded
    match = KIND.compare(KIND.fingerprint(media(mp3), SETTINGS), KIND.fingerprint(media(path), SETTINGS), SETTINGS)
    assert match.similarity_score >= SETTINGS.audio.match_threshold


def test_many_corrupt_packets_or_garbage_fail(files: Path, mp3: Path) -> None:
    data = mp3.read_bytes()
    cases = {
        "shredded.mp3": corrupt(data, 100),
        "garbage.m4a": np.random.default_rng(2).integers(0, 256, 50_000, np.uint8).tobytes(),
    }
    for name, content in cases.items():
        (files / name).write_bytes(content)
        with pytest.raises(DecodeFailed):
            KIND.fingerprint(media(files / name), SETTINGS)


def test_truncated_files_decode_what_is_there_and_a_bare_header_is_empty(files: Path, mp3: Path) -> None:
    half = files / "half.mp3"
    half.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 2])
    clean, cut = decode(mp3, "audio/mpeg"), decode(half, "audio/mpeg")
    assert 0.45 * clean.size < cut.size < 0.55 * clean.size
    assert np.array_equal(cut[: cut.size - 4000], clean[: cut.size - 4000])
    wav = files / "header_only.wav"
    sf.write(wav, np.zeros(1000, np.float32), SR, subtype="PCM_16")
    wav.write_bytes(wav.read_bytes()[:44])
    with pytest.raises(EmptyMedia):
        list(iter_samples(wav, "audio/wav", 3600.0))


_HOUR_CHILD = """
import json, resource, sys
from pathlib import Path
from shared.kinds.audio.decode import iter_samples
path = Path(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = sum(block.size for block in iter_samples(path, "audio/flac", 7200.0))
print(json.dumps({"samples": n, "grew_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
"""


def test_an_hour_decodes_in_flat_memory(files: Path) -> None:
    """One hour at 22.05 kHz is 318 MB as float32 at the source rate and 115 MB at 8 kHz; the decode must
    hold neither (a fresh process, so its peak RSS is this decode's)."""
    path = files / "hour.flac"
    t = np.arange(60 * SR) / SR
    minute = (0.3 * np.sin(2 * np.pi * 440.0 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2).astype(np.float32)
    with sf.SoundFile(path, "w", SR, 1, format="FLAC") as out:
        for _ in range(60):
            out.write(minute)
    child = subprocess.run(
        [sys.executable, "-c", _HOUR_CHILD, str(path)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )
    result = json.loads(child.stdout)
    assert result["samples"] == 3600 * SAMPLE_RATE_HZ
    assert result["grew_kb"] < 40_000
