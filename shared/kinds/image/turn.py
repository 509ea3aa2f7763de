"""A picture turned a few degrees inside its own frame: find the turn from its black corners, turn it back.

Role: pure numpy/OpenCV functions on a luma plane; ``fingerprint_image`` applies them to each inset
(``inset.py``) so that a picture turned, then pasted into a page, still hashes near its original. Imports
nothing from Flask or Celery.

Why: turning a picture by a few degrees inside its frame (the usual "rotate" of an editor that keeps the
canvas size) fills the four corners with black wedges and moves the DCT hash of the frame 40-130 bits from
the original's. The inset finder still finds the frame (its straight edges against the page), and the
local stage still matches the pair, but a catalog finds such a copy only through its keypoints, whose
turned, shrunken descriptors miss the vocabulary: these were most of the catalog's missed combinations
(``bench/catalog/image/REPORT.md``). Turned back by the right angle, the frame hashes near its original
again, once the corners the turn cut off are guessed from the pixels nearby (``turned_back``): left black,
those wedges along the edges kept the median frame 36-38 bits away even at the true angle; guessed, 14-19.

How (``turn_deg``):

* **Magnitude.** On each side of the frame, the depth of the dark region, column by column, grows
  linearly across a corner's wedge, deepening toward the corner: along the wedge's long leg with slope
  tan(angle), along its short leg with slope 1/tan(angle). A straight-line fit over each half side's
  partly dark columns gives a slope; the shallow ones (at most ``MAX_TURN_DEG``) that deepen toward their
  corner are long legs. At least ``MIN_CORNERS`` corners must show one, and their median is the turn
  (dark picture content along a side rarely deepens toward two corners in straight lines).
* **Sign.** The wedges of a turn one way and the other sit on different legs of each corner: the sign is
  the one whose predicted empty corners are darker.
* No turn is reported under ``MIN_TURN_DEG`` (the hash survives that), above ``MAX_TURN_DEG``, or with
  fewer than ``MIN_CORNERS`` corners showing a wedge.

Measured on the image benchmark's ``combo_screenshot_rotate`` variants (turned 1-5 degrees, then shown at
0.45-0.75 of a page, JPEG q75; 101 per seed), ``bench/catalog/image/turned_insets.py``: a frame within 31
bits of its original for 9 (seed 1) and 11 (seed 0) of them as it is; turned back by this estimate, 61
and 58 (36 and 31 with black corners); turned back by the best of 89 angles, chosen by looking at the
original (a ceiling, not a method), 72 and 75. On ordinary pictures' insets it reports a turn for about a
fifth (dark content along two sides); that costs a stored inset entry, never a false match on the
benchmark's negatives. About 1.5 ms an inset (the estimate 0.5, turning back and guessing the corners 1).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

#: A pixel darker than this (luma) can be a wedge's fill.
DARK_LEVEL = 40.0
MIN_TURN_DEG = 0.4
MAX_TURN_DEG = 8.0
#: A half side needs this many partly dark columns for a slope.
MIN_RUN_PX = 6
#: Corners that must show a wedge.
MIN_CORNERS = 2
#: The sign is judged on the frame resized to this long side.
SIGN_SIDE_PX = 160
#: Turned back, the pixels within this distance of where nothing came in are guessed too (the turn's
#: interpolation blends them with black), from a window of the frame's short side over this.
EDGE_PX = 1
FILL_WINDOW_FRACTION = 8


def turned_back(region: np.ndarray, turn_deg: float) -> np.ndarray:
    """``region`` (float32 luma) turned by ``-turn_deg`` about its centre (counter-clockwise positive, as
    Pillow's ``rotate``), same size. Where nothing comes in (the corners the first turn cut off), and
    ``EDGE_PX`` around it, the pixels are a smooth guess from the pixels nearby (a normalised box filter),
    not black: black wedges along the edges moved the hash as much as the turn did (module docstring)."""
    h, w = region.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -turn_deg, 1.0)
    out = cv2.warpAffine(region, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.ones((h, w), np.float32), m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=EDGE_PX)
    if not inside.any():
        return out
    side = max(3, min(h, w) // FILL_WINDOW_FRACTION)
    weight = cv2.blur(inside, (side, side))
    guess = cv2.blur(out * inside, (side, side)) / np.maximum(weight, 1e-6)
    guess[weight < 1e-6] = float(out[inside > 0].mean())
    return np.where(inside > 0, out, guess).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _centred_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the frame's centre, (x, y), read-only (both signs of a turn use them)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x -= (width - 1) / 2
    y -= (height - 1) / 2
    x.flags.writeable = y.flags.writeable = False
    return x, y


def empty_corners(height: int, width: int, turn_deg: float) -> np.ndarray:
    """The pixels of a frame left empty when its content is turned by ``turn_deg`` about its centre."""
    x, y = _centred_grid(height, width)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a = math.radians(turn_deg)
    u = x * math.cos(a) - y * math.sin(a) + cx
    v = x * math.sin(a) + y * math.cos(a) + cy
    return (u < -1) | (u > width) | (v < -1) | (v > height)


#: The frame's sides as (dark band getter, the corners at the start and the end of the side).
_SIDES = (
    (lambda dark, reach: dark[:reach], ("top-left", "top-right")),
    (lambda dark, reach: dark[::-1][:reach], ("bottom-left", "bottom-right")),
    (lambda dark, reach: dark.T[:reach], ("top-left", "bottom-left")),
    (lambda dark, reach: dark.T[::-1][:reach], ("top-right", "bottom-right")),
)


def _wedge_slopes(region: np.ndarray) -> dict[str, list[float]]:
    """Per corner, the slopes of the dark depth along the sides where it is a wedge's long leg: shallow (at
    most ``MAX_TURN_DEG``) and deepening toward the corner (module docstring)."""
    max_slope = math.tan(math.radians(MAX_TURN_DEG))
    dark = region < DARK_LEVEL
    found: dict[str, list[float]] = {}
    for band_of, corners in _SIDES:
        reach = max(2, min(dark.shape) // 4)
        band = band_of(dark, reach)  # rows into the frame from this side, columns along it
        depth = np.where(band.all(axis=0), reach, np.argmin(band, axis=0)).astype(np.float64)
        x = np.arange(len(depth), dtype=np.float64)
        for end, half in enumerate((slice(0, len(depth) // 2), slice(len(depth) // 2, len(depth)))):
            partly = (depth[half] > 0.5) & (depth[half] < reach - 0.5)
            if partly.sum() < MIN_RUN_PX:
                continue
            xs, ys = x[half][partly], depth[half][partly]
            xs = xs - xs.mean()
            slope = float(xs @ (ys - ys.mean()) / (xs @ xs))  # least squares
            # The side's first half ends at its first corner (x = 0), its second half at the other.
            if abs(slope) <= max_slope and (slope > 0) == (end == 1):
                found.setdefault(corners[end], []).append(abs(slope))
    return found


def turn_deg(region: np.ndarray) -> float | None:
    """How far the picture inside the frame ``region`` (luma) is turned, counter-clockwise positive; None
    when its corners do not show it (module docstring)."""
    h0, w0 = region.shape
    if min(h0, w0) < 4 * MIN_RUN_PX:
        return None
    wedges = _wedge_slopes(region)
    if len(wedges) < MIN_CORNERS:
        return None
    magnitude = math.degrees(math.atan(float(np.median([v for slopes in wedges.values() for v in slopes]))))
    if not MIN_TURN_DEG <= magnitude <= MAX_TURN_DEG:
        return None
    scale = min(1.0, SIGN_SIDE_PX / max(h0, w0))
    small = cv2.resize(region, (max(8, round(w0 * scale)), max(8, round(h0 * scale))), interpolation=cv2.INTER_AREA)
    dark = small < DARK_LEVEL
    share = []
    for sign in (1.0, -1.0):
        empty = empty_corners(dark.shape[0], dark.shape[1], sign * magnitude)
        share.append(float(dark[empty].mean()) if empty.any() else 0.0)
    return magnitude if share[0] >= share[1] else -magnitude
