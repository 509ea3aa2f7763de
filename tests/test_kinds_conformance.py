"""One conformance suite over every media kind, through the ``MediaKind`` protocol only.

For each kind: an example matches itself with score 1.0, its fingerprint bytes round-trip, a mild
distortion stays a match, an unrelated example does not, and a wrong-kind fingerprint is refused.
Each kind's own test module pins its golden fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cli import synth
from shared import media
from shared.errors import InvalidRequest, MediaMatchError
from shared.kinds import KIND_NAMES, fingerprint_version, get_kind
from shared.protocol import Fingerprint, LocalMedia
from shared.settings import Settings

SETTINGS = Settings()


def _image(d: Path) -> tuple[Path, Path, Path]:
    photo = synth.photo(500)
    return (
        synth.save_image(photo, d / "a.png"),
        synth.save_image(np.ascontiguousarray(photo[::2, ::2]), d / "b.jpg", quality=60),
        synth.save_image(synth.photo(501), d / "c.png"),
    )


def _audio(d: Path) -> tuple[Path, Path, Path]:
    song = synth.melody(500, 20.0)
    quieter = 0.6 * song + 0.01 * np.random.default_rng(1).standard_normal(song.size).astype(np.float32)
    return (
        synth.save_audio(song, d / "a.wav"),
        synth.save_audio(quieter.astype(np.float32), d / "b.flac"),
        synth.save_audio(synth.melody(501, 20.0), d / "c.wav"),
    )


def _video(d: Path) -> tuple[Path, Path, Path]:
    frames = synth.clip_frames(500, 12.0, 10)
    return (
        synth.save_video(frames, d / "a.mp4", 10),
        synth.save_video([f[::2, ::2].copy() for f in frames], d / "b.mp4", 10),
        synth.save_video(synth.clip_frames(501, 12.0, 10), d / "c.mp4", 10),
    )


EXAMPLES: dict[str, Callable[[Path], tuple[Path, Path, Path]]] = {"image": _image, "audio": _audio, "video": _video}


@pytest.fixture(scope="module", params=KIND_NAMES)
def kind_examples(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Fingerprint]]:
    name = request.param
    kind = get_kind(name)
    paths = EXAMPLES[name](tmp_path_factory.mktemp(name))
    fps = []
    for path in paths:
        local: LocalMedia = media.describe(path, media.hash_file(path, 1 << 30), kind)
        fps.append(kind.fingerprint(local, SETTINGS))
    return name, fps


def test_an_example_matches_itself(kind_examples: tuple[str, list[Fingerprint]]) -> None:
    name, (a, _b, _c) = kind_examples
    m = get_kind(name).compare(a, a, SETTINGS)
    assert m.similarity_score >= 0.99 and m.similarity_score >= SETTINGS.threshold_for(name)


def test_bytes_round_trip_with_the_current_version(kind_examples: tuple[str, list[Fingerprint]]) -> None:
    name, fps = kind_examples
    kind = get_kind(name)
    for fp in fps:
        data = fp.to_bytes()
        assert kind.fingerprint_from_bytes(data).to_bytes() == data
        assert type(fp).version == fingerprint_version(name) and type(fp).kind == name


def test_mild_distortion_matches_and_unrelated_does_not(kind_examples: tuple[str, list[Fingerprint]]) -> None:
    name, (a, b, c) = kind_examples
    kind = get_kind(name)
    threshold = SETTINGS.threshold_for(name)
    assert kind.compare(a, b, SETTINGS).similarity_score >= threshold
    assert kind.compare(a, c, SETTINGS).similarity_score < threshold
    assert 0.0 <= kind.compare(b, c, SETTINGS).similarity_score <= 1.0


def test_foreign_fingerprints_are_refused(kind_examples: tuple[str, list[Fingerprint]]) -> None:
    name, (a, _b, _c) = kind_examples
    other = get_kind(next(k for k in KIND_NAMES if k != name))
    with pytest.raises(MediaMatchError):
        other.fingerprint_from_bytes(a.to_bytes())
    with pytest.raises(InvalidRequest):
        other.compare(a, a, SETTINGS)
