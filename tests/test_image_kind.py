"""Tests for the image kind (shared/kinds/image): decoding traps, robustness, separation, bytes, golden."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, UnsupportedMedia
from shared.kinds import get_kind
from shared.kinds.image import KIND, ImageFingerprint, ransac
from shared.kinds.image.features import MAX_KEYPOINTS
from shared.kinds.image.hashing import DIHEDRALS, dct_block, dihedral_hashes, trim_box
from shared.kinds.image.photometric import (
    block_agreement,
    decode_thumbnail,
    encode_thumbnail,
    frame_agreement,
    untrimmed_frame_matrix,
)
from shared.kinds.image.scoring import inliers_to_reach, score_from_bits, score_from_frame, score_from_inliers
from shared.kinds.image.verify import (
    _TURN_BINS,
    _TURN_WINDOW_BINS,
    Neighbours,
    _matches,
    _neighbours,
    _window_sources,
    inlier_bound,
)
from shared.protocol import LocalMedia
from shared.settings import Settings
from shared.sniff import SNIFF_BYTES, sniff

SETTINGS = Settings()
THRESHOLD = SETTINGS.image.match_threshold


# -- generated media ------------------------------------------------------------------------------------
def photo(seed: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A smooth 'photo': low-pass noise at three scales plus filled shapes, slightly blurred (RGB uint8)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for scale, amp in ((64, 90), (16, 40), (4, 12)):
        noise = rng.normal(size=(height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        img += amp * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    img += 128
    for _ in range(6):
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(img, centre, int(rng.integers(10, height // 3)), color, -1, lineType=cv2.LINE_AA)
        else:
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.rectangle(img, p1, p2, color, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def media(path: Path) -> LocalMedia:
    data = path.read_bytes()
    return LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), sniff(data[:SNIFF_BYTES]) or "")


def save(img: Image.Image, path: Path, **params: object) -> LocalMedia:
    img.save(path, **params)
    return media(path)


def fp(m: LocalMedia, settings: Settings = SETTINGS) -> ImageFingerprint:
    result = KIND.fingerprint(m, settings)
    assert isinstance(result, ImageFingerprint)
    return result


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image.Image, ImageFingerprint]:
    img = Image.fromarray(photo(1))
    return img, fp(save(img, tmp_path_factory.mktemp("base") / "base.png"))


# -- protocol -------------------------------------------------------------------------------------------
def test_registry_and_protocol_basics(tmp_path: Path) -> None:
    assert get_kind("image") is KIND
    assert KIND.name == "image"
    assert KIND.accepts("image/jpeg") and KIND.accepts("image/heic") and not KIND.accepts("video/mp4")
    m = save(Image.fromarray(photo(2)), tmp_path / "a.png")
    assert KIND.probe_duration_s(m, SETTINGS) is None
    assert fp(m).duration_s is None


def test_self_match_and_bytes_round_trip(base: tuple[Image.Image, ImageFingerprint]) -> None:
    _, f = base
    data = f.to_bytes()
    # A few KB: header and hashes (307 bytes), the 64 px thumbnail (320x240 -> 64x48, stored as a lossless
    # WebP), 20 bytes per keypoint, 50 per inset.
    assert f.thumb.shape == (48, 64) and 0 < len(f.thumb_code) < 64 * 48
    assert 64 <= len(f.features.points) <= MAX_KEYPOINTS
    n_bytes = 307 + len(f.thumb_code) + 20 * len(f.features.points) + 50 * len(f.insets)
    assert len(data) == n_bytes <= 307 + 64 * 48 + 20 * MAX_KEYPOINTS + 50 * 3
    back = KIND.fingerprint_from_bytes(data)
    assert back == f and back.to_bytes() == data
    match = KIND.compare(f, back, SETTINGS)
    assert match.similarity_score == 1.0
    assert match.confidence == "high" and match.warnings == () and match.segments == ()
    assert match.details["transform"] == "identity" and match.details["hamming_bits"] == 0


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_older_fingerprint_versions_are_refused(
    version: int, base: tuple[Image.Image, ImageFingerprint]
) -> None:
    data = bytearray(base[1].to_bytes())
    data[12:14] = version.to_bytes(2, "little")  # the header's version field
    with pytest.raises(DecodeFailed, match=f"version {version}"):
        ImageFingerprint.from_bytes(bytes(data))


def test_from_bytes_rejects_garbage(base: tuple[Image.Image, ImageFingerprint]) -> None:
    data = base[1].to_bytes()
    for bad in (b"", data[:20], data[:-1], b"XXXX" + data[4:], data + b"\0"):
        with pytest.raises(DecodeFailed):
            ImageFingerprint.from_bytes(bad)


def test_a_parsed_thumbnail_is_decoded_on_first_use(base: tuple[Image.Image, ImageFingerprint]) -> None:
    """Parsing leaves the thumbnail encoded (a search compares most candidates by hashes alone); its first
    use decodes it to the fresh pixels, and a corrupt one is then a typed error, not a crash."""
    _, f = base
    back = ImageFingerprint.from_bytes(f.to_bytes())
    assert back.thumb_pixels is None and "thumb" not in vars(back)
    # A copy found by its hash alone (the global score over the local cap) never needs the thumbnail.
    assert KIND.compare(f, back, SETTINGS).similarity_score == 1.0 and "thumb" not in vars(back)
    np.testing.assert_array_equal(back.thumb, f.thumb)
    data = bytearray(f.to_bytes())
    start = data.index(f.thumb_code)  # the stored thumbnail: zero 20 bytes of its image data
    data[start + 20 : start + 40] = bytes(20)
    corrupt = ImageFingerprint.from_bytes(bytes(data))
    assert corrupt.to_bytes() == bytes(data)  # storing it again needs no decode
    with pytest.raises(DecodeFailed, match="thumbnail"):
        _ = corrupt.thumb


def test_descriptors_are_mirror_closed(large: tuple[Image.Image, ImageFingerprint], tmp_path: Path) -> None:
    """The mirrored image's descriptors are the stored ones with their halves swapped (features.py, format v5)."""
    img, f = large
    g = fp(save(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), tmp_path / "mirror.png"))
    a, b = f.features, g.features
    # Pair each keypoint with the mirror image's keypoint at its reflected position and octave.
    ref = b.mirrored_xy
    dist = np.linalg.norm(a.xy[:, None, :] - ref[None, :, :], axis=2)
    nearest = dist.argmin(axis=1)
    same = (dist.min(axis=1) < 1.0) & (a.points["octave"] == b.points["octave"][nearest])
    assert same.sum() >= len(a.points) // 4  # the selection over grid cells is not mirror symmetric

    def bits(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.unpackbits(np.bitwise_xor(x, y), axis=1).sum(axis=1)

    swapped = bits(a.descriptors(mirror=True)[same], b.descriptors()[nearest[same]])
    plain = bits(a.descriptors()[same], b.descriptors()[nearest[same]])
    assert np.median(swapped) <= 8 and np.median(plain) >= 30


def test_thumbnail_codec_round_trip(base: tuple[Image.Image, ImageFingerprint]) -> None:
    """The stored thumbnail decodes to exactly the fresh one (lossless): stored and fresh fingerprints
    compare alike."""
    _, f = base
    th, tw = f.thumb.shape
    decoded = decode_thumbnail(f.thumb_code, tw, th)
    assert decoded is not None and np.array_equal(decoded, f.thumb)
    assert decode_thumbnail(f.thumb_code, tw + 1, th) is None and decode_thumbnail(b"junk", tw, th) is None
    again = encode_thumbnail(f.thumb)
    assert 0 < len(again) < tw * th


# -- robustness -----------------------------------------------------------------------------------------
def _brighter(img: Image.Image) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img).astype(np.int16) + 20, 0, 255).astype(np.uint8))


def _letterbox(img: Image.Image) -> Image.Image:
    w, h = img.size
    out = Image.new("RGB", (w, h + 2 * h // 4), (0, 0, 0))
    out.paste(img, (0, h // 4))
    return out


def _padded(img: Image.Image) -> Image.Image:
    w, h = img.size
    out = Image.new("RGB", (w + 80, h), (255, 255, 255))
    out.paste(img, (40, 0))
    return out


VARIANTS = {
    "jpeg_q30": (lambda im: im, {"format": "JPEG", "quality": 30}, "identity"),
    "half": (lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), {}, "identity"),
    "double": (lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC), {}, "identity"),
    "mirror": (lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), {}, "mirror"),
    "rotate_90": (lambda im: im.transpose(Image.Transpose.ROTATE_270), {}, "rotate_90"),  # PIL turns CCW
    "rotate_180": (lambda im: im.transpose(Image.Transpose.ROTATE_180), {}, "rotate_180"),
    "rotate_270": (lambda im: im.transpose(Image.Transpose.ROTATE_90), {}, "rotate_270"),
    "brighter": (_brighter, {}, "identity"),
    "letterbox": (_letterbox, {"format": "JPEG", "quality": 85}, "identity"),
    "padded_white": (_padded, {}, "identity"),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_mild_distortions_still_match(
    name: str, base: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source = base
    transform, params, expected = VARIANTS[name]
    suffix = ".jpg" if params.get("format") == "JPEG" else ".png"
    target = fp(save(transform(img), tmp_path / f"variant{suffix}", **params))
    match = KIND.compare(source, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    assert match.details["transform"] == expected
    assert match.confidence == "high"
    assert KIND.compare(target, source, SETTINGS).similarity_score == match.similarity_score


def test_letterbox_trim_box_is_reported(base: tuple[Image.Image, ImageFingerprint], tmp_path: Path) -> None:
    img, _ = base
    target = fp(save(_letterbox(img), tmp_path / "lb.png"))
    left, top, right, bottom = target.trim
    assert (left, right) == (0, img.width)
    assert abs(top - img.height // 4) <= 2 and abs(bottom - (img.height // 4 + img.height)) <= 2


def test_unrelated_images_do_not_match(tmp_path: Path) -> None:
    fps = [fp(save(Image.fromarray(photo(100 + i)), tmp_path / f"u{i}.png")) for i in range(22)]
    for a, b in itertools.combinations(fps, 2):
        match = KIND.compare(a, b, SETTINGS)
        assert match.similarity_score < THRESHOLD, match.details
        assert match.details["hamming_bits"] >= 64
        assert match.confidence == "high"


# -- local features: crops, canvases, small rotations ---------------------------------------------------
def _crop_box(img: Image.Image, keep: float, left_frac: float, top_frac: float) -> tuple[int, int, int, int]:
    w, h = round(img.width * keep**0.5 * 1.15), round(img.height * keep**0.5 / 1.15)  # aspect ratio changes
    x, y = round((img.width - w) * left_frac), round((img.height - h) * top_frac)
    return x, y, x + w, y + h


def _screenshot(img: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (img.width * 2, img.height * 2), (236, 236, 240))
    pixels = np.asarray(canvas).copy()
    pixels[:40] = (40, 60, 120)  # a title bar
    for row in range(80, pixels.shape[0] - 20, 28):  # lines of "text" in a side bar
        pixels[row : row + 8, 20 : 20 + int(60 + (row * 37) % 140)] = 30
    canvas = Image.fromarray(pixels)
    canvas.paste(img, (img.width // 2 + 110, img.height // 2))
    return canvas


LOCAL_VARIANTS = {
    "crop_50_off_centre": lambda im: im.crop(_crop_box(im, 0.5, 0.9, 0.2)),
    "crop_25_mirrored": lambda im: im.crop(_crop_box(im, 0.75, 0.1, 0.8)).transpose(
        Image.Transpose.FLIP_LEFT_RIGHT
    ),
    "rotate_4_degrees": lambda im: im.rotate(4, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0)),
    "screenshot_canvas": _screenshot,
    "crop_then_rotate_90": lambda im: im.crop(_crop_box(im, 0.7, 0.5, 0.5)).transpose(
        Image.Transpose.ROTATE_270
    ),
    "crop_with_logo": lambda im: _logo(im.crop(_crop_box(im, 0.75, 0.3, 0.6))),
}


def _logo(img: Image.Image) -> Image.Image:
    """An opaque two-colour logo over 12% of the area, near a corner."""
    pixels = np.asarray(img).copy()
    h, w = pixels.shape[:2]
    lh, lw = round(h * 0.3), round(w * 0.4)
    pixels[h - lh - 10 : h - 10, 10 : 10 + lw] = (250, 200, 0)
    pixels[h - lh + 10 : h - 30, 30 : 30 + lw // 2] = (20, 20, 120)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image.Image, ImageFingerprint]:
    img = Image.fromarray(photo(21, 800, 600))
    return img, fp(save(img, tmp_path_factory.mktemp("large") / "large.jpg", quality=90))


@pytest.mark.parametrize("name", sorted(LOCAL_VARIANTS))
def test_crops_canvases_and_rotations_match_through_local_features(
    name: str, large: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source = large
    target = fp(save(LOCAL_VARIANTS[name](img), tmp_path / "v.jpg", quality=80))
    # A canvas's picture is matched by its inset hash first (tests/test_image_inset.py); without it, by keypoints.
    target = dataclasses.replace(target, insets=())
    match = KIND.compare(source, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    explanation = match.details["explanation"]
    assert explanation["stage"] == "local_features" and explanation["inliers"] >= 10
    assert explanation["mirror"] == (name == "crop_25_mirrored")
    # The copy agrees with its source block by block wherever it is not edited.
    assert explanation["block_agreement"]["agreeing_fraction"] >= SETTINGS.image.min_block_agreement
    assert KIND.compare(target, source, SETTINGS).similarity_score >= THRESHOLD


def _two_shots(seed: int) -> tuple[Image.Image, Image.Image]:
    """The same place shot twice: a shared background, and a near object that moves between the shots.

    Like a stereo pair or two video frames: the background alone gives a consistent similarity, but the
    pictures differ wherever the object was or is.
    """
    background = photo(seed, 800, 600)
    near = photo(seed + 1000, 800, 600)

    def shot(dx: int) -> Image.Image:
        pixels = background.copy()
        pixels[100:520, 140 + dx : 500 + dx] = near[100:520, 140:500]
        return Image.fromarray(pixels[:, 40:760])

    return shot(0), shot(200)


def test_same_place_shot_twice_is_refused_by_the_block_check(tmp_path: Path) -> None:
    unchecked = dataclasses.replace(
        SETTINGS, image=dataclasses.replace(SETTINGS.image, min_block_agreement=0.0)
    )
    for seed in (41, 42):
        first, second = _two_shots(seed)
        a = fp(save(first, tmp_path / "a.jpg", quality=85))
        b = fp(save(second, tmp_path / "b.jpg", quality=85))
        # The geometry alone is convinced (the shared background), so the block check is what decides.
        assert KIND.compare(a, b, unchecked).similarity_score >= THRESHOLD
        match = KIND.compare(a, b, SETTINGS)
        assert match.similarity_score < THRESHOLD, match.details
        checked = match.details["explanation"]["block_agreement"]
        assert checked["agreeing_fraction"] < SETTINGS.image.min_block_agreement


def test_block_agreement_of_a_thumbnail_with_itself_and_its_mirror(
    base: tuple[Image.Image, ImageFingerprint],
) -> None:
    f = base[1]
    size = (f.features.width, f.features.height)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    same = block_agreement(f.thumb, size, f.thumb, size, identity, False, 0.7)
    assert same.fraction == 1.0 and same.blocks >= 30
    mirrored = np.ascontiguousarray(f.thumb[:, ::-1])
    assert block_agreement(f.thumb, size, mirrored, size, identity, True, 0.7).fraction == 1.0
    assert block_agreement(f.thumb, size, mirrored, size, identity, False, 0.7).fraction < 0.5
    nothing = np.zeros((0, 0), np.uint8)
    assert block_agreement(f.thumb, size, nothing, size, identity, False, 0.7).blocks == 0


def test_frame_agreement_keeps_the_frame_and_its_mirror_only(
    base: tuple[Image.Image, ImageFingerprint],
) -> None:
    f = base[1]
    size = (f.features.width, f.features.height)
    mirrored = np.ascontiguousarray(f.thumb[:, ::-1])
    same = frame_agreement(f.thumb, size, mirrored, size, 0.7, 0.03)
    assert same is not None and same.fraction == 1.0
    assert score_from_frame(same, SETTINGS.image) == pytest.approx(SETTINGS.image.local_max_score)
    # Another aspect ratio is not the same frame: no judgement, no score.
    other = (size[0], round(size[1] * 0.8))
    assert frame_agreement(f.thumb, size, f.thumb, other, 0.7, 0.03) is None
    assert score_from_frame(None, SETTINGS.image) == 0.0


def _chessboard_in_canvas(seed: int) -> tuple[Image.Image, Image.Image]:
    """A photographed chessboard (repeated pattern: slight perspective, uneven light) and that photo at half
    size inside a screenshot."""
    rng = np.random.default_rng(seed)
    square = 60
    board = (np.indices((9, 12)).sum(axis=0) % 2 * 200 + 30).astype(np.float32)
    board = cv2.resize(board, (12 * square, 9 * square), interpolation=cv2.INTER_NEAREST)
    flat = np.float32([[0, 0], [720, 0], [720, 540], [0, 540]])
    seen = np.float32([[130, 80], [850, 110], [820, 640], [110, 610]])
    warp = cv2.getPerspectiveTransform(flat, seen)
    printed = cv2.warpPerspective(board, warp, (960, 720), flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones_like(board), warp, (960, 720)) > 0.5
    yy, xx = np.mgrid[0:720, 0:960]
    light = 0.75 + 0.35 * (xx / 960) * (1 - 0.3 * yy / 720)
    pixels = photo(seed, 960, 720).astype(np.float32)
    pixels[inside] = (printed[inside] * light[inside])[:, None]
    pixels += rng.normal(0, 3, pixels.shape)
    img = Image.fromarray(np.clip(cv2.GaussianBlur(pixels, (0, 0), 1.2), 0, 255).astype(np.uint8))
    return img, _screenshot(img.resize((480, 360), Image.Resampling.LANCZOS))


def test_inliers_to_reach_is_the_fewest_whose_confirmed_score_reaches_it() -> None:
    s = SETTINGS.image
    for score in (0.0, 0.3, 0.8, 0.85, 0.8937, 0.899, 0.89999):
        n = inliers_to_reach(score, s)
        assert score_from_inliers(int(n), s, confirmed=True) >= score
        assert n == s.local_min_inliers or score_from_inliers(int(n) - 1, s, confirmed=True) < score
    assert inliers_to_reach(s.local_max_score, s) == float("inf")


def test_matches_keep_the_nearest_source_per_target_and_both_candidates_when_ambiguous() -> None:
    """``_matches`` against a plain reference, on random two-nearest-neighbour tables: the ratio-test pairs
    (per target its nearest passing source, the first on ties, targets in order of first appearance) and
    the repeated-pattern pairs (both neighbours within the cap, in (source, target) order)."""
    rng = np.random.default_rng(6)
    image = SETTINGS.image
    for _ in range(200):
        n, targets = int(rng.integers(2, 80)), int(rng.integers(2, 40))
        near = np.stack([rng.choice(targets, 2, replace=False) for _ in range(n)]).astype(np.int64)
        first = rng.integers(0, 60, n)
        dist = np.stack([first, first + rng.integers(0, 20, n)], axis=1).astype(np.int32)
        best: dict[int, tuple[int, int]] = {}
        for i in range(n):
            if dist[i, 0] <= image.max_descriptor_bits and dist[i, 0] < image.ratio_test * dist[i, 1]:
                t = int(near[i, 0])
                if t not in best or dist[i, 0] < best[t][0]:
                    best[t] = (int(dist[i, 0]), i)
        plain = _matches((dist, near), image)
        assert list(zip(plain[0].tolist(), plain[1].tolist(), strict=True)) == [(i, t) for t, (_, i) in best.items()]
        both = sorted((i, int(near[i, c])) for i in range(n) for c in (0, 1) if dist[i, c] <= image.max_descriptor_bits)
        ambiguous = _matches((dist, near), image, ambiguous=True)
        assert list(zip(ambiguous[0].tolist(), ambiguous[1].tolist(), strict=True)) == both


def test_the_turn_window_bound_counts_distinct_sources_in_the_best_window() -> None:
    """``_window_sources`` (the repeated-pattern pass's bound) equals counting, for every window of
    consecutive turn bins (wrapping past 360 degrees), the distinct source keypoints with a match in it."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(0, 120))
        src = np.sort(rng.integers(0, int(rng.integers(1, 60)), n))
        bins = rng.integers(0, _TURN_BINS, n)
        want = max(
            (len({s for s, b in zip(src.tolist(), bins.tolist(), strict=True)
                  if (b - start) % _TURN_BINS < _TURN_WINDOW_BINS}) for start in range(_TURN_BINS)),
            default=0,
        )
        assert _window_sources(src, bins) == want


def test_an_ambiguous_fit_counts_only_when_the_blocks_confirm_it(tmp_path: Path) -> None:
    img, shot = _chessboard_in_canvas(5)
    source = fp(save(img, tmp_path / "board.jpg", quality=90))
    target = fp(save(shot, tmp_path / "shot.jpg", quality=85))
    match = KIND.compare(source, target, SETTINGS)
    explanation = match.details["explanation"]
    # The board's corners defeat the ratio test; the repeated-pattern pass (both candidates kept, hypotheses
    # whose keypoints turn with the fit) finds the copy at half size, and the blocks confirm it.
    assert match.similarity_score >= THRESHOLD, match.details
    assert explanation["ambiguous"] is True and explanation["inliers"] >= SETTINGS.image.local_min_inliers
    assert abs(explanation["rotation_deg"]) < 5.0 and explanation["mirror"] is False
    assert explanation["block_agreement"]["agreeing_fraction"] >= SETTINGS.image.confirm_block_agreement
    # Catalog search's bound on this fit, from the matches alone (the best window of keypoint turns), holds:
    # at least the inliers RANSAC found, and so a score bound at least the score.
    knn = Neighbours(source.features, target.features)
    assert inlier_bound(source.features, target.features, knn, SETTINGS.image) >= explanation["inliers"]
    assert KIND.compare_or_bound(source, target, SETTINGS, 2.0) >= match.similarity_score
    # The same fit, unconfirmed (a confirmation nothing can reach), does not count at all.
    strict = dataclasses.replace(
        SETTINGS, image=dataclasses.replace(SETTINGS.image, confirm_block_agreement=1.01)
    )
    assert KIND.compare(source, target, strict).similarity_score < THRESHOLD
    other = fp(save(Image.fromarray(photo(7, 960, 720)), tmp_path / "o.jpg"))
    assert KIND.compare(source, other, SETTINGS).similarity_score < THRESHOLD


def test_a_small_copy_is_judged_on_fine_blocks(
    large: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source = large
    # The photo at a third of a plain canvas' width: under 6 blocks of 8 px in the 64 px thumbnail.
    pixels = np.full((img.height * 2, img.width * 3, 3), 236, np.uint8)
    pixels[:40] = (40, 60, 120)  # a title bar and lines of "text", so no uniform border is trimmed
    for row in range(80, pixels.shape[0] - 20, 28):
        pixels[row : row + 8, 20 : 20 + int(60 + (row * 37) % 400)] = 30
    canvas = Image.fromarray(pixels)
    canvas.paste(img, (img.width + 200, img.height // 2))
    target = dataclasses.replace(fp(save(canvas, tmp_path / "small.png")), insets=())  # keypoints, not the inset
    match = KIND.compare(source, target, SETTINGS)
    checked = match.details["explanation"]["block_agreement"]
    assert match.similarity_score >= THRESHOLD, match.details
    assert checked["block_px"] == 4 and checked["blocks"] >= SETTINGS.image.fine_confirm_min_blocks
    assert checked["agreeing_fraction"] >= SETTINGS.image.confirm_block_agreement


def test_frame_check_ignores_a_watermark_s_strokes(base: tuple[Image.Image, ImageFingerprint]) -> None:
    f = base[1]
    size = (f.features.width, f.features.height)
    marked = f.thumb.copy()
    for row in (12, 26, 40):  # three lines of "text": thin bright strokes with dark edges
        cv2.putText(marked, "SAMPLE", (2, row), cv2.FONT_HERSHEY_SIMPLEX, 0.3, 0, 2, cv2.LINE_AA)
        cv2.putText(marked, "SAMPLE", (2, row), cv2.FONT_HERSHEY_SIMPLEX, 0.3, 255, 1, cv2.LINE_AA)
    plain = frame_agreement(f.thumb, size, marked, size, 0.7, 0.03)
    robust = frame_agreement(f.thumb, size, marked, size, 0.7, 0.03, SETTINGS.image.frame_drop_fraction)
    assert plain is not None and robust is not None
    assert robust.fraction > plain.fraction and robust.fraction >= SETTINGS.image.frame_block_agreement
    # Dropping the worst-fitting pixels does not make an unrelated picture agree.
    other = np.ascontiguousarray(
        np.asarray(Image.fromarray(photo(9)).convert("L").resize(f.thumb.shape[::-1]))
    )
    unrelated = frame_agreement(f.thumb, size, other, size, 0.7, 0.03, SETTINGS.image.frame_drop_fraction)
    assert unrelated is not None and unrelated.fraction < 0.5


def test_untrimmed_frame_matrix_follows_the_trim_boxes() -> None:
    # Source untrimmed 1000x500 (working 512x256); target the same frame with its left 100 px trimmed away.
    matrix = untrimmed_frame_matrix(
        (0, 0, 1000, 500), (1000, 500), (512, 256), (100, 0, 1000, 500), (1000, 500), (512, 284), False, 0.03
    )
    assert matrix is not None
    # Source working x at original pixel 100 is target working x 0; the right edge stays the right edge.
    for x_orig, x_target in ((100.0, 0.0), (1000.0, 512.0)):
        x = x_orig * 512 / 1000
        assert matrix[0, 0] * x + matrix[0, 2] == pytest.approx(x_target)
    assert matrix[1, 1] * 256 + matrix[1, 2] == pytest.approx(284)
    # Mirrored, the trimmed side is on the right of the mirrored target: source x 0 maps to 0.
    mirrored = untrimmed_frame_matrix(
        (0, 0, 1000, 500), (1000, 500), (512, 256), (100, 0, 1000, 500), (1000, 500), (512, 284), True, 0.03
    )
    assert mirrored is not None and mirrored[0, 2] == pytest.approx(0.0)
    # Original frames of another aspect ratio are not one picture.
    assert (
        untrimmed_frame_matrix(
            (0, 0, 1000, 500), (1000, 500), (512, 256), (0, 0, 800, 500), (800, 500), (512, 320), False, 0.03
        )
        is None
    )


def test_explanation_reports_crop_box_and_rotation(
    large: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source = large
    box = _crop_box(img, 0.5, 0.8, 0.3)
    target = fp(save(img.crop(box).transpose(Image.Transpose.ROTATE_270), tmp_path / "c.png"))
    explanation = KIND.compare(source, target, SETTINGS).details["explanation"]
    assert np.allclose(explanation["crop_box_source"], box, atol=12), (explanation, box)
    assert abs(explanation["rotation_deg"] - 90.0) < 2.0 and abs(explanation["scale"] - 1.0) < 0.05
    assert explanation["mirror"] is False


def test_unrelated_large_photos_find_no_geometry(tmp_path: Path) -> None:
    fps = [
        fp(save(Image.fromarray(photo(300 + i, 640, 480)), tmp_path / f"u{i}.jpg", quality=85))
        for i in range(8)
    ]
    for a, b in itertools.combinations(fps, 2):
        match = KIND.compare(a, b, SETTINGS)
        assert match.similarity_score < THRESHOLD, match.details
        explanation = match.details["explanation"]
        # The repeated-pattern pass may find a chance fit; the block check refuses it (score above).
        assert (
            explanation["ambiguous"]
            or (explanation["inliers"] or 0) < SETTINGS.image.local_inliers_at_threshold
        )


def test_inlier_score_is_monotone_and_calibrated() -> None:
    image = SETTINGS.image
    scores = [score_from_inliers(n, image) for n in range(0, 300)]
    assert all(x <= y for x, y in itertools.pairwise(scores)) and scores[0] == 0.0 and scores[-1] <= 1.0
    assert scores[image.local_min_inliers - 1] == 0.0
    assert score_from_inliers(int(image.local_inliers_at_threshold), image) == pytest.approx(THRESHOLD)
    # A fit the photometric blocks confirm reaches the threshold with fewer inliers, on a curve as monotone.
    confirmed = [score_from_inliers(n, image, confirmed=True) for n in range(0, 300)]
    assert all(x <= y for x, y in itertools.pairwise(confirmed)) and confirmed[-1] < 1.0
    assert all(c >= u for c, u in zip(confirmed, scores, strict=True))
    assert confirmed[int(image.confirmed_inliers_at_threshold)] == pytest.approx(THRESHOLD)


def test_thresholds_are_settings(large: tuple[Image.Image, ImageFingerprint], tmp_path: Path) -> None:
    """A stricter per-deployment inlier requirement turns a crop match off: nothing is hard-wired."""
    img, source = large
    target = fp(save(img.crop(_crop_box(img, 0.5, 0.5, 0.5)), tmp_path / "c.jpg", quality=85))
    strict = dataclasses.replace(
        SETTINGS.image, local_inliers_at_threshold=10_000.0, confirmed_inliers_at_threshold=10_000.0
    )
    assert KIND.compare(source, target, SETTINGS).similarity_score >= THRESHOLD
    assert (
        KIND.compare(source, target, dataclasses.replace(SETTINGS, image=strict)).similarity_score < THRESHOLD
    )


# -- low-information inputs ------------------------------------------------------------------------------
def _low_information_images() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:240, :320]
    blank = np.full((240, 320), 200, np.uint8)
    split_v = np.where(xx < 160, 255, 0).astype(np.uint8)
    split_h = np.where(yy < 100, 255, 30).astype(np.uint8)
    gradient = (xx * 255 / 320).astype(np.uint8)
    noisy = np.clip(128 + np.random.default_rng(3).normal(0, 2, (240, 320)), 0, 255).astype(np.uint8)
    return {"blank": blank, "split_v": split_v, "split_h": split_h, "gradient": gradient, "noisy": noisy}


def test_blank_and_two_tone_images_never_match(tmp_path: Path) -> None:
    fps = {
        k: fp(save(Image.fromarray(v), tmp_path / f"{k}.png")) for k, v in _low_information_images().items()
    }
    for (ka, a), (kb, b) in itertools.product(fps.items(), repeat=2):
        match = KIND.compare(a, b, SETTINGS)
        assert match.similarity_score < THRESHOLD, (ka, kb)
        assert match.confidence == "low"
        assert "low_information_source" in match.warnings and "low_information_target" in match.warnings


def test_low_information_target_against_photo(
    base: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    blank = fp(save(Image.new("RGB", (320, 240), (90, 90, 90)), tmp_path / "blank.jpg", quality=80))
    match = KIND.compare(base[1], blank, SETTINGS)
    assert match.similarity_score < THRESHOLD and match.confidence == "low"
    assert match.warnings == ("low_information_target",)


def test_low_contrast_photo_is_not_trimmed_or_flagged(tmp_path: Path) -> None:
    """A hazy photo must not be eaten by the border trim nor taken for a blank."""
    for seed in (1, 2, 3):
        source = fp(save(Image.fromarray(photo(seed)), tmp_path / "p.png"))
        hazy = Image.fromarray((photo(seed).astype(np.float32) / 8 + 100).astype(np.uint8))
        target = fp(save(hazy, tmp_path / "hazy.jpg", quality=75))
        assert target.trim == (0, 0, 320, 240)
        match = KIND.compare(source, target, SETTINGS)
        assert match.similarity_score >= THRESHOLD and match.warnings == (), match.details


def test_tiny_image_gets_low_confidence(tmp_path: Path) -> None:
    img = Image.fromarray(photo(4)).resize((24, 18), Image.Resampling.LANCZOS)
    f = fp(save(img, tmp_path / "tiny.png"))
    match = KIND.compare(f, f, SETTINGS)
    assert match.confidence == "low" and "tiny_source" in match.warnings and "tiny_target" in match.warnings


# -- decoding traps ---------------------------------------------------------------------------------------
def test_exif_orientation_is_applied(base: tuple[Image.Image, ImageFingerprint], tmp_path: Path) -> None:
    img, source = base
    # Orientation 6 means "rotate 90 degrees clockwise to display": store the pixels turned the other way.
    stored = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    target = fp(save(stored, tmp_path / "exif.jpg", quality=90, exif=exif.tobytes()))
    assert (target.width, target.height) == img.size
    match = KIND.compare(source, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD and match.details["transform"] == "identity"


def test_transparent_png_composited_on_grey(
    base: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source = base
    canvas = Image.new("RGBA", (img.width + 100, img.height + 60), (255, 0, 0, 0))
    canvas.paste(img.convert("RGBA"), (50, 30))
    target = fp(save(canvas, tmp_path / "alpha.png"))
    assert KIND.compare(source, target, SETTINGS).similarity_score >= THRESHOLD
    # Two different transparent images must not collapse to the same hash.
    other = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    other.paste(Image.fromarray(photo(9)).convert("RGBA"), (50, 30))
    assert (
        KIND.compare(target, fp(save(other, tmp_path / "other.png")), SETTINGS).similarity_score < THRESHOLD
    )


@pytest.mark.parametrize(
    "mode, suffix, params",
    [
        ("CMYK", ".jpg", {"quality": 90}),
        ("I;16", ".png", {}),
        ("P", ".gif", {}),
        ("L", ".bmp", {}),
        ("RGB", ".bmp", {}),
        ("RGB", ".tiff", {}),
        ("RGB", ".webp", {"quality": 90}),
        ("LA", ".png", {}),
    ],
)
def test_modes_and_formats(
    mode: str,
    suffix: str,
    params: dict[str, object],
    base: tuple[Image.Image, ImageFingerprint],
    tmp_path: Path,
) -> None:
    img, source = base
    if mode == "I;16":
        luma = np.asarray(img.convert("L")).astype(np.uint16) * 257
        converted = Image.fromarray(luma)  # uint16 -> mode I;16
    elif mode == "P":
        converted = img.quantize(colors=256)
    else:
        converted = img.convert(mode)
    m = save(converted, tmp_path / f"x{suffix}", **params)
    if mode == "I;16":
        with Image.open(m.path) as reopened:
            assert reopened.mode.startswith("I")
    match = KIND.compare(source, fp(m), SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    assert match.details["transform"] == "identity"


def test_animated_gif_uses_first_frame(base: tuple[Image.Image, ImageFingerprint], tmp_path: Path) -> None:
    img, source = base
    frames = [img.quantize(colors=256), Image.fromarray(photo(50)).quantize(colors=256)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2
    assert KIND.compare(source, fp(media(path)), SETTINGS).similarity_score >= THRESHOLD


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_heif_and_avif(suffix: str, base: tuple[Image.Image, ImageFingerprint], tmp_path: Path) -> None:
    img, source = base
    path = tmp_path / f"x{suffix}"
    try:
        if suffix == ".heic":
            import pillow_heif

            pillow_heif.from_pillow(img).save(path, quality=80)
        else:
            img.save(path, quality=80)
    except (ImportError, KeyError, OSError, ValueError) as exc:  # no encoder in this build
        pytest.skip(f"cannot encode {suffix}: {exc}")
    m = media(path)
    assert m.mime == ("image/heic" if suffix == ".heic" else "image/avif")
    assert KIND.compare(source, fp(m), SETTINGS).similarity_score >= THRESHOLD


def test_large_jpeg_reduced_decode_matches_full_png(tmp_path: Path) -> None:
    """Large JPEGs are decoded at a reduced DCT scale; that must not move the hash off the PNG's."""
    img = Image.fromarray(photo(12, 1280, 960))
    jpeg = fp(save(img, tmp_path / "big.jpg", quality=90))
    png = fp(save(img, tmp_path / "big.png"))
    assert (jpeg.width, jpeg.height) == (1280, 960)
    match = KIND.compare(png, jpeg, SETTINGS)
    assert match.details["hamming_bits"] <= 8 and match.confidence == "high"


def _png_header_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + end


def test_decompression_bomb_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_claiming(100_000, 100_000))
    with pytest.raises(MediaLimitExceeded):
        fp(media(path))
    path.write_bytes(_png_header_claiming(12_000, 9_000))  # over our limit, under Pillow's error size
    with pytest.raises(MediaLimitExceeded):
        fp(
            media(path),
            dataclasses.replace(SETTINGS, image=dataclasses.replace(SETTINGS.image, max_pixels=10**8 - 1)),
        )


def test_max_pixels_setting_is_enforced(tmp_path: Path) -> None:
    m = save(Image.fromarray(photo(5)), tmp_path / "p.png")
    small = dataclasses.replace(SETTINGS, image=dataclasses.replace(SETTINGS.image, max_pixels=320 * 240 - 1))
    with pytest.raises(MediaLimitExceeded):
        fp(m, small)


def test_truncated_and_corrupt_files_fail_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "t.jpg"
    Image.fromarray(photo(6)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeFailed):
        fp(media(path))
    path.write_bytes(data[:3] + b"\0" * 200)
    with pytest.raises(DecodeFailed):
        fp(media(path))


def test_empty_and_unsupported_inputs(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(EmptyMedia):
        KIND.fingerprint(LocalMedia(path, 0, hashlib.sha256(b"").hexdigest(), "image/png"), SETTINGS)
    m = save(Image.fromarray(photo(7)), tmp_path / "a.png")
    with pytest.raises(UnsupportedMedia):
        KIND.fingerprint(dataclasses.replace(m, mime="video/mp4"), SETTINGS)
    with pytest.raises(DecodeFailed):  # a PNG sniffed as JPEG never reaches the PNG decoder
        KIND.fingerprint(dataclasses.replace(m, mime="image/jpeg"), SETTINGS)


# -- algorithm properties --------------------------------------------------------------------------------
def test_dihedral_dct_identities() -> None:
    plane = cv2.resize(photo(8)[..., 1].astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    _, block = dct_block(plane)
    for d in DIHEDRALS:
        _, expected = dct_block(np.ascontiguousarray(d.apply_plane(plane)))
        np.testing.assert_allclose(d.apply_dct(block), expected, atol=1e-2, err_msg=d.name)


def test_dihedral_hashes_follow_pdq_rule_per_transform() -> None:
    """The 8 hashes computed as one array equal PDQ's rule applied to each transformed block on its own."""
    plane = cv2.resize(photo(3)[..., 1].astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    _, block = dct_block(plane)
    for d, got in zip(DIHEDRALS, dihedral_hashes(block), strict=True):
        flat = d.apply_dct(block).astype(np.float64).ravel()
        bits = flat > np.median(flat[1:])
        bits[0] = False
        assert got == np.packbits(bits).tobytes(), d.name


def test_two_nearest_descriptors_match_a_brute_force_search_ties_included() -> None:
    """``verify._neighbours`` (a distance matrix and two argmins) = sorting each row by (distance, index)."""
    rng = np.random.default_rng(5)
    for values in (256, 2):  # random codes, then codes of 0/1 bytes: ties everywhere
        a = rng.integers(0, values, (120, 16), dtype=np.uint8)
        b = rng.integers(0, values, (90, 16), dtype=np.uint8)
        dist = np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)
        order = np.lexsort((np.broadcast_to(np.arange(len(b)), dist.shape), dist), axis=1)[:, :2]
        found = _neighbours(a, b)
        assert found is not None
        np.testing.assert_array_equal(found[1], order)
        np.testing.assert_array_equal(found[0], np.take_along_axis(dist, order, axis=1))
    assert _neighbours(a[:1], b) is None and _neighbours(a, b[:1]) is None


def test_trim_box_ignores_two_tone_content() -> None:
    plane = np.zeros((100, 200), np.float32)
    plane[:, 100:] = 255.0
    assert trim_box(plane) == (0, 0, 200, 100)


def test_score_is_monotone_and_calibrated() -> None:
    scores = [score_from_bits(b) for b in range(0, 257)]
    assert scores[0] == 1.0 and scores[90] == 0.0 and scores[256] == 0.0
    assert all(x >= y for x, y in itertools.pairwise(scores))
    assert scores[31] >= THRESHOLD > scores[32]


# -- golden ----------------------------------------------------------------------------------------------
#: Header (version 5), size/trim/quality/detail/feature plane/keypoint count/thumbnail size/thumbnail bytes,
#: then the 8 dihedral hashes (photo(1) as a 320x240 PNG); the thumbnail (WebP), keypoints and insets that
#: follow are pinned by the SHA-256 of the whole fingerprint. Version 4 appended the insets (three here: the
#: photo's own filled rectangles); version 5 (bench/image/REPORT.md, v8) added the thumbnail's byte count
#: (1,966) and changed the thumbnail and keypoints to their compact forms (the hashes are unchanged).
GOLDEN_PREFIX_HEX = (
    "4d4d4650696d616765000000050040010000f0000000000000000000000040010000f000000064ec"
    "000280010001"
    "4030ae07"
    "0f117e1978c280fe65a5bf209f2e6237981b5b8307c4952cb65baf65a85a8b1e"
    "43ca3c15385b338fb3929b699238db286d3565fb4a4184de07ce4e60669ebc99"
    "5a44d4b72d972a5430f0158aca7bc89dcd4ef12952913f86e30e05cffd4f21b4"
    "169f96bf6d0e9925e6c731c3c76d71823860cf511f042e74529ba4ca33cb1633"
    "5a442b482d96d5ab30f0ea75ca7b3762cd0e0ed65291c059e20efa30ed0fde4b"
    "0f1181e678c37f0165a540df9f2e9dc8985ba47c07c46ad3b75b509ab85a74e1"
    "169f69406d0e66d8e6c7ce3cc76d8e753860302e1f14d18b529b1b3533cbc9cc"
    "43cac3ea385bcc72b3926496923824df6d359a864a417b2107cef19f669e6366"
)
GOLDEN_SHA256 = "597997a5d8c94662a12b2383cb3a53ce9f302038e6bd85c40b9fc1a24d1faed6"


def test_golden_fingerprint(base: tuple[Image.Image, ImageFingerprint]) -> None:
    """Pins the exact bytes for a deterministic PNG: catches drift in Pillow, OpenCV or numpy."""
    data = base[1].to_bytes()
    assert data[:306].hex() == GOLDEN_PREFIX_HEX
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256


def test_a_hypothesis_counts_the_matches_of_its_turn_window_as_all_of_them() -> None:
    """``_count_agreeing`` tests only the matches turned within its window of the hypothesis's rotation, and
    counts exactly the matches that agree among all of them: rotations all round (the window wrapping
    past 0/360), turns stored in any multiple of 360 degrees, matches placed to agree."""
    rng = np.random.default_rng(21)
    n = 400
    min_cos = np.cos(np.radians(ransac.MAX_TURN_GAP_DEG))
    window = ransac.MAX_TURN_GAP_DEG + ransac._TURN_WINDOW_MARGIN_DEG
    max_sq = 9.0
    checked = 0
    for rotation in np.concatenate([rng.uniform(0, 360, 60), [0.0, 359.99, 29.5, 330.5]]):
        src = rng.uniform(0, 500, (n, 2))
        u = np.array([np.cos(np.radians(rotation)), np.sin(np.radians(rotation))])
        z = 0.8 * u
        t = rng.uniform(-50, 50, 2)
        dst = rng.uniform(0, 500, (n, 2))
        near = rng.random(n) < 0.5  # half land on the hypothesis, within ~3 px
        dst[near] = np.stack([z[0] * src[near, 0] - z[1] * src[near, 1], z[0] * src[near, 1] + z[1] * src[near, 0]],
                             axis=1) + t + rng.normal(0, 2.0, (int(near.sum()), 2))
        turn_deg = rotation + rng.uniform(-40, 40, n) + 360.0 * rng.integers(-1, 2, n)
        unit = np.stack([np.cos(np.radians(turn_deg)), np.sin(np.radians(turn_deg))], axis=1)
        turn_360 = turn_deg % 360.0
        by_turn = np.argsort(turn_360, kind="stable")
        got = ransac._count_agreeing(z[0], z[1], t[0], t[1], u[0], u[1], src, dst, unit, by_turn, turn_360[by_turn],
                                     window, max_sq, min_cos)
        rx = z[0] * src[:, 0] - z[1] * src[:, 1] + t[0] - dst[:, 0]
        ry = z[0] * src[:, 1] + z[1] * src[:, 0] + t[1] - dst[:, 1]
        every = int(((rx * rx + ry * ry <= max_sq) & (unit @ u >= min_cos)).sum())
        assert got == every
        checked += every
    assert checked > 1000
