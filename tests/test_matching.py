"""The pairwise pipeline (``shared.matching``): thresholds and ``min_segment_s`` per request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cli import synth
from shared import media
from shared.kinds import get_kind
from shared.matching import MatchOptions, match_media
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

    def no_fingerprint(*_: object) -> None:
        raise AssertionError("identical bytes must not be decoded")

    env = match_media(kind, local, local, Settings(), fingerprinter=no_fingerprint)  # type: ignore[arg-type]
    assert env["exact_match"] and env["similarity_score"] == 1.0
    assert env["matched_segments"] == [{"source_start": 0.0, "source_end": 6.0, "target_start": 0.0, "target_end": 6.0, "score": 1.0}]
