"""Tests for insets (shared/kinds/image/inset.py): a picture shown inside a screenshot-like page matches globally."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shared.errors import DecodeFailed
from shared.kinds.image import ImageFingerprint
from shared.kinds.image.fingerprint import MAX_STORED_INSETS
from shared.kinds.image.hashing import hamming_bits
from shared.kinds.image.inset import find_insets
from shared.kinds.image.scoring import global_evidence
from shared.kinds.image.turn import turn_deg, turned_back
from shared.protocol import pack_header
from tests.test_image_kind import KIND, SETTINGS, THRESHOLD, fp, photo, save


def page(picture: Image.Image, width: int, height: int, at: tuple[int, int], dark: bool = False) -> Image.Image:
    """A UI-like page: title bar, side bar of text lines, buttons, and ``picture`` pasted at ``at``."""
    pixels = np.full((height, width, 3), (30, 30, 36) if dark else (236, 236, 240), np.uint8)
    pixels[:36] = (40, 60, 120)
    ink = 220 if dark else 30
    for row in range(60, height - 40, 26):  # lines of "text"
        pixels[row : row + 8, 16 : 16 + int(60 + (row * 37) % 140)] = ink
    for k in range(3):  # buttons under the picture
        pixels[height - 30 : height - 8, at[0] + k * 90 : at[0] + k * 90 + 80] = (70, 120, 200)
    canvas = Image.fromarray(pixels)
    canvas.paste(picture, at)
    return canvas


def chessboard(width: int, height: int, square: int = 40) -> Image.Image:
    """A board under uneven light, as photographed: a repeated pattern that defeats keypoint matching."""
    y, x = np.mgrid[0:height, 0:width]
    board = ((x // square) + (y // square)) % 2 * 140.0 + 60.0
    light = 0.55 + 0.45 * np.asarray(photo(36, width, height)[..., 0], np.float64) / 255.0
    return Image.fromarray(np.stack([np.clip(board * light, 0, 255).astype(np.uint8)] * 3, axis=-1))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image.Image, ImageFingerprint]:
    img = Image.fromarray(photo(31, 640, 480))
    return img, fp(save(img, tmp_path_factory.mktemp("inset") / "source.jpg", quality=90))


@pytest.mark.parametrize("seed", [31, 34, 35])
def test_finds_the_pasted_picture_within_a_pixel_or_two(seed: int) -> None:
    """Among the (up to three) insets is the pasted picture; pictures holding straight-edged shapes of
    their own may rank one of those first."""
    picture = Image.fromarray(photo(seed, 300, 220))
    canvas = page(picture, 700, 420, (330, 70))
    boxes = find_insets(np.asarray(canvas.convert("L"), np.float32))
    expected = (330, 70, 630, 290)
    assert any(max(abs(a - b) for a, b in zip(box, expected, strict=True)) <= 2 for box in boxes), boxes


@pytest.mark.parametrize(
    "plane",
    [np.full((300, 400), 128.0, np.float32), np.zeros((10, 500), np.float32), np.asarray(photo(33)[..., 1], np.float32)],
    ids=["blank", "sliver", "photo_without_frame"],
)
def test_no_inset_in_planes_without_one(plane: np.ndarray) -> None:
    boxes = find_insets(plane)
    # A plain generated photo may hold straight-edged shapes, but never a box reaching its whole frame.
    h, w = plane.shape
    assert all((b[2] - b[0]) * (b[3] - b[1]) < 0.9 * h * w for b in boxes)
    if plane.std() == 0 or min(plane.shape) < 16:
        assert boxes == []


@pytest.mark.parametrize("dark", [False, True], ids=["light_page", "dark_page"])
def test_picture_inside_a_page_matches_through_its_inset(
    dark: bool, source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source_fp = source
    shown = img.resize((320, 240), Image.Resampling.LANCZOS)  # half size, as in a screenshot
    target = fp(save(page(shown, 760, 400, (380, 60), dark), tmp_path / "page.png"))
    assert target.insets, "the page's picture was not found"
    match = KIND.compare(source_fp, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    explanation = match.details["explanation"]
    assert match.details["method"] == "dct256_inset" and explanation["stage"] == "inset_hash"
    assert explanation["inset_holder"] == "target" and explanation["dihedral"] == "identity"
    left, top, right, bottom = explanation["inset_box"]
    assert abs(left - 380) <= 3 and abs(top - 60) <= 3 and abs(right - 700) <= 3 and abs(bottom - 300) <= 3
    reverse = KIND.compare(target, source_fp, SETTINGS)
    assert reverse.similarity_score == pytest.approx(match.similarity_score)
    assert reverse.details["explanation"]["inset_holder"] == "source"


def test_mirrored_picture_inside_a_page_is_reported_as_mirrored(
    source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, source_fp = source
    shown = img.resize((320, 240), Image.Resampling.LANCZOS).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    target = fp(save(page(shown, 760, 400, (380, 60)), tmp_path / "page.jpg", quality=75))
    match = KIND.compare(source_fp, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    assert match.details["explanation"]["dihedral"] == "mirror" and match.details["explanation"]["mirror"]


def test_full_width_picture_of_a_phone_screenshot_matches(
    source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    """The picture spans the whole width, with app bars and text above and below it (no side edges)."""
    img, source_fp = source
    shown = img.resize((400, 300), Image.Resampling.LANCZOS)
    phone = np.full((760, 400, 3), 250, np.uint8)
    phone[:60] = (20, 20, 20)
    for row in range(90, 200, 24):
        phone[row : row + 9, 20 : 20 + int(80 + (row * 53) % 250)] = 40
    for row in range(540, 720, 24):
        phone[row : row + 9, 20 : 20 + int(80 + (row * 29) % 250)] = 40
    canvas = Image.fromarray(phone)
    canvas.paste(shown, (0, 220))
    target = fp(save(canvas, tmp_path / "phone.png"))
    match = KIND.compare(source_fp, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    assert match.details["explanation"]["stage"] == "inset_hash"


def test_repeated_pattern_inside_a_page_matches(tmp_path: Path) -> None:
    """A board shown at half size: its inset hash is exact, where keypoints find a handful of inliers."""
    board = chessboard(480, 360)
    source_fp = fp(save(board, tmp_path / "board.png"))
    target = fp(save(page(board.resize((240, 180)), 640, 320, (330, 60)), tmp_path / "page.png"))
    match = KIND.compare(source_fp, target, SETTINGS)
    assert match.similarity_score >= THRESHOLD, match.details
    assert match.details["method"] == "dct256_inset" and match.details["explanation"]["hamming_bits"] <= 8


def test_other_pictures_inside_a_page_do_not_match(
    source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    _, source_fp = source
    for seed in (40, 41, 42):
        other = Image.fromarray(photo(seed, 320, 240))
        target = fp(save(page(other, 760, 400, (380, 60)), tmp_path / f"page{seed}.png"))
        assert target.insets
        match = KIND.compare(source_fp, target, SETTINGS)
        assert match.similarity_score < THRESHOLD, match.details


def test_blank_panel_in_a_page_does_not_match_a_blank_image(tmp_path: Path) -> None:
    """An inset without information is never compared: a grey panel does not match a grey image."""
    grey = Image.new("RGB", (320, 240), (120, 120, 120))
    source_fp = fp(save(Image.new("RGB", (640, 480), (120, 120, 120)), tmp_path / "grey.png"))
    target = fp(save(page(grey, 760, 400, (380, 60)), tmp_path / "page.png"))
    match = KIND.compare(source_fp, target, SETTINGS)
    assert match.similarity_score < THRESHOLD and match.details["method"] != "dct256_inset", match.details


def test_insets_survive_the_byte_form_and_older_versions_are_refused(
    source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    img, _ = source
    target = fp(save(page(img.resize((320, 240)), 760, 400, (380, 60)), tmp_path / "page.png"))
    assert target.insets
    data = target.to_bytes()
    again = ImageFingerprint.from_bytes(data)
    assert again == target and again.insets == target.insets
    without = dataclasses.replace(target, insets=())
    assert len(data) - len(without.to_bytes()) == 50 * len(target.insets)
    with pytest.raises(DecodeFailed):
        ImageFingerprint.from_bytes(data[:-1])
    with pytest.raises(DecodeFailed):
        ImageFingerprint.from_bytes(pack_header("image", 3) + data[14:])


def test_up_to_four_inset_entries_are_stored_and_a_fifth_is_refused(
    source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    """Three pictures as they are and the turned-back hash of one of them, or two of each, fit; more never do."""
    img, _ = source
    target = fp(save(page(img.resize((320, 240)), 760, 400, (380, 60)), tmp_path / "page.png"))
    entry = target.insets[0]
    full = dataclasses.replace(target, insets=(entry,) * MAX_STORED_INSETS)
    assert MAX_STORED_INSETS == 4
    data = full.to_bytes()
    assert ImageFingerprint.from_bytes(data).insets == full.insets
    with pytest.raises(ValueError):
        dataclasses.replace(target, insets=(entry,) * (MAX_STORED_INSETS + 1))
    count_at = len(data) - 1 - 50 * MAX_STORED_INSETS  # a payload claiming a fifth entry is refused, not misread
    forged = data[:count_at] + bytes([MAX_STORED_INSETS + 1]) + data[count_at + 1 :] + data[-50:]
    with pytest.raises(DecodeFailed):
        ImageFingerprint.from_bytes(forged)


# -- a picture turned inside its frame (shared/kinds/image/turn.py) ------------------------------------------
@pytest.mark.parametrize("angle", [-4.0, -1.5, 2.5, 4.5])
def test_turn_of_a_picture_inside_its_frame_is_read_from_its_black_corners(angle: float) -> None:
    picture = Image.fromarray(photo(31, 320, 240)).rotate(angle, resample=Image.Resampling.BICUBIC,
                                                          fillcolor=(0, 0, 0))
    found = turn_deg(np.asarray(picture.convert("L"), np.float32))
    assert found is not None and abs(found - angle) <= 0.5, found


def test_no_turn_is_read_from_a_picture_that_is_not_turned() -> None:
    assert turn_deg(np.asarray(Image.fromarray(photo(31, 320, 240)).convert("L"), np.float32)) is None
    assert turn_deg(np.zeros((240, 320), np.float32)) is None  # all dark: no wedge edges
    assert turn_deg(np.zeros((10, 320), np.float32)) is None


def test_turned_back_guesses_the_corners_the_turn_cut_off() -> None:
    """Turned back, the corners the turn cut off are a guess from the pixels nearby, not black wedges."""
    picture = Image.fromarray(photo(31, 320, 240))
    original = np.asarray(picture.convert("L"), np.float32)
    turned = np.asarray(picture.rotate(4.0, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0)).convert("L"),
                        np.float32)
    back = turned_back(turned, 4.0)
    m = cv2.getRotationMatrix2D((159.5, 119.5), -4.0, 1.0)
    black = cv2.warpAffine(turned, m, (320, 240), flags=cv2.INTER_LINEAR, borderValue=0)
    border = np.ones(original.shape, bool)
    border[12:-12, 12:-12] = False  # the lost corners are thin wedges along the edges
    error, black_error = (float(np.abs(x - original)[border].mean()) for x in (back, black))
    assert back.shape == original.shape and back.dtype == np.float32
    assert error < 0.5 * black_error, (error, black_error)


def test_turned_picture_inside_a_page_matches_through_its_turned_back_inset(
    source: tuple[Image.Image, ImageFingerprint], tmp_path: Path
) -> None:
    """Turned 3 degrees in its frame, shown small in a page: the frame hashes near the source only turned back."""
    img, source_fp = source
    turned = img.rotate(3.0, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    target = fp(save(page(turned.resize((320, 240), Image.Resampling.LANCZOS), 760, 400, (380, 60)),
                     tmp_path / "page.jpg", quality=80))
    as_is, back = target.insets[0], target.insets[1]
    bits = [min(hamming_bits(h, inset.hash) for h in source_fp.hashes) for inset in (as_is, back)]
    assert bits[1] <= 31 < bits[0], bits  # 31 bits: the global match radius
    evidence = global_evidence(source_fp, target, SETTINGS.image)  # the route a catalog's hash stage takes
    assert evidence.inset is not None and evidence.inset.box == back.box and evidence.inset.bits == bits[1]
    assert evidence.score >= THRESHOLD
    assert KIND.compare(source_fp, target, SETTINGS).similarity_score >= evidence.score
