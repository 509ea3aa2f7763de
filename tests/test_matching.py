"""The pairwise pipeline (``shared.matching``): thresholds and ``min_segment_s`` per request, and the two
fingerprints computed side by side."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from cli import synth
from shared import media
from shared.errors import DecodeFailed, JobCanceled, NoStream
from shared.kinds import get_kind
from shared.matching import MatchOptions, match_media
from shared.protocol import Fingerprint, LocalMedia, MediaKind, Progress, no_progress
from shared.settings import Settings

RATE_HZ = 22050


def test_a_shorter_min_segment_per_request_finds_a_short_reuse(tmp_path: Path) -> None:
    """1.5 s of the source inside unrelated audio: too short for the default, found when asked for."""
    song, filler = synth.melody(900, 20.0), synth.melody(901, 20.0)
    target = np.concatenate([filler[: RATE_HZ * 6], song[RATE_HZ * 5 : int(RATE_HZ * 6.5)], filler[RATE_HZ * 6 : RATE_HZ * 14]])
    kind = get_kind("audio")
    a, b = (
        media.describe(p, media.hash_file(p, 1 << 30), kind)
        for p in (synth.save_audio(song, tmp_path / "a.wav"), synth.save_audio(target, tmp_path / "b.wav"))
    )
    default = match_media(kind, a, b, Settings())
    assert default["match"] is False and default["matched_segments"] == []
    short = match_media(kind, a, b, Settings(), MatchOptions(min_segment_s=1.0))
    assert short["match"] is True
    (seg,) = short["matched_segments"]
    assert abs(seg["source_start"] - 5.0) <= 0.5 and abs(seg["target_start"] - 6.0) <= 0.5


def test_identical_bytes_skip_decoding(tmp_path: Path) -> None:
    kind = get_kind("video")
    path = synth.save_video(synth.clip_frames(902, 6.0, 10), tmp_path / "v.mp4", 10)
    local = media.describe(path, media.hash_file(path, 1 << 30), kind)

    class NoFingerprints:
        def get(self, *_: object) -> None:
            raise AssertionError("identical bytes must not be decoded")

        put = get

    env = match_media(kind, local, local, Settings(), cache=NoFingerprints())  # type: ignore[arg-type]
    assert env["exact_match"] and env["similarity_score"] == 1.0
    assert env["matched_segments"] == [{"source_start": 0.0, "source_end": 6.0, "target_start": 0.0, "target_end": 6.0, "score": 1.0}]


# -- the two fingerprints are computed at the same time ------------------------------------------------------
class RecordingKind:
    """The audio kind, noting the thread of every ``fingerprint`` call (by file name)."""

    def __init__(self) -> None:
        self.kind = get_kind("audio")
        self.name = "audio"
        self.threads: dict[str, int] = {}

    def __getattr__(self, attr: str) -> object:
        return getattr(self.kind, attr)

    def fingerprint(self, m: LocalMedia, settings: Settings, progress: Progress = no_progress) -> Fingerprint:
        self.threads[m.path.name] = threading.get_ident()
        return self.kind.fingerprint(m, settings, progress)


def test_concurrent_fingerprints_equal_serial_ones_and_the_cache_stays_on_the_calling_thread(tmp_path: Path) -> None:
    song = synth.melody(903, 12.0)
    target = np.concatenate([synth.melody(904, 4.0), song[: RATE_HZ * 8]])
    kind = RecordingKind()
    a, b = (
        media.describe(p, media.hash_file(p, 1 << 30), kind.kind)
        for p in (synth.save_audio(song, tmp_path / "a.wav"), synth.save_audio(target, tmp_path / "b.wav"))
    )
    cache: dict[str, bytes] = {}
    cache_threads: list[int] = []

    class DictCache:  # a database connection would be used in these two
        def get(self, k: MediaKind, m: LocalMedia) -> Fingerprint | None:
            cache_threads.append(threading.get_ident())
            return k.fingerprint_from_bytes(cache[m.sha256]) if m.sha256 in cache else None

        def put(self, k: MediaKind, m: LocalMedia, fp: Fingerprint) -> None:
            cache_threads.append(threading.get_ident())
            cache[m.sha256] = fp.to_bytes()

    cached = DictCache()
    fractions: list[float] = []
    computed = match_media(
        kind, a, b, Settings(), progress=fractions.append, cache=cached  # type: ignore[arg-type]
    )
    me = threading.get_ident()
    assert cache_threads == [me] * 4
    assert kind.threads["b.wav"] == me and kind.threads["a.wav"] != me  # the source ran beside the target
    serial = {m.sha256: kind.kind.fingerprint(m, Settings()).to_bytes() for m in (a, b)}
    assert cache == serial
    assert fractions == sorted(fractions) and 0.05 <= fractions[0] and fractions[-1] == 0.98
    assert max(f for f in fractions if f < 0.98) > 0.9

    kind.threads.clear()
    threads_before = threading.active_count()
    from_cache = match_media(kind, a, b, Settings(), cache=cached)  # type: ignore[arg-type]
    assert kind.threads == {} and threading.active_count() == threads_before
    assert computed["match"] is True
    computed.pop("processing_time_ms"), from_cache.pop("processing_time_ms")
    assert computed == from_cache

    del cache[b.sha256]  # a cached source: the target alone is computed, on the calling thread, no thread
    match_media(kind, a, b, Settings(), cache=cached)  # type: ignore[arg-type]
    assert kind.threads == {"b.wav": me} and threading.active_count() == threads_before


class ScriptedKind:
    """A timed kind whose ``fingerprint`` reports progress ``steps`` times, 10 ms apart, then raises or returns,
    as the file name says: ``<steps>-<outcome>`` with outcome ``ok``, ``decode`` (``DecodeFailed``),
    ``nostream`` (``NoStream``) or ``canceled`` (``JobCanceled``)."""

    name = "audio"

    def __init__(self) -> None:
        self.finished: list[str] = []

    def fingerprint(self, m: LocalMedia, settings: Settings, progress: Progress = no_progress) -> Fingerprint:
        steps, outcome = m.path.name.split("-")
        for i in range(int(steps)):
            time.sleep(0.01)
            progress((i + 1) / int(steps))
        self.finished.append(m.path.name)
        if outcome == "ok":
            return cast(Fingerprint, object())  # never compared: the other side always fails
        raise {"decode": DecodeFailed, "nostream": NoStream, "canceled": JobCanceled}[outcome](outcome)


@pytest.mark.parametrize(
    ("source", "target", "error", "finished"),
    [
        ("20-decode", "0-nostream", DecodeFailed, {"20-decode", "0-nostream"}),  # the source's error wins
        ("0-nostream", "20-decode", NoStream, {"0-nostream"}),  # the target stops at its next report
        ("20-ok", "3-decode", DecodeFailed, {"20-ok", "3-decode"}),
        ("3-decode", "20-ok", DecodeFailed, {"3-decode"}),
        ("200-ok", "2-canceled", JobCanceled, {"2-canceled"}),  # a cancel stops the source too
    ],
)
def test_errors_keep_their_type_and_no_thread_is_left(
    tmp_path: Path, source: str, target: str, error: type[Exception], finished: set[str]
) -> None:
    kind = ScriptedKind()
    sides = []
    for name in (source, target):
        (tmp_path / name).write_bytes(name.encode())
        sides.append(LocalMedia(tmp_path / name, len(name), name.ljust(64, "0"), "audio/wav"))
    fractions: list[float] = []
    with pytest.raises(error):
        match_media(kind, sides[0], sides[1], Settings(), progress=fractions.append)  # type: ignore[arg-type]
    assert set(kind.finished) == finished
    assert not [t for t in threading.enumerate() if t.name.startswith("fingerprint-source")]
    assert fractions == sorted(fractions) and all(0.05 <= f <= 0.95 for f in fractions)
