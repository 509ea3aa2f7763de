"""Photometric verification of a fitted similarity: do the two pictures agree block by block?

Role: pure OpenCV/numpy on the small luma thumbnails stored in the fingerprints; ``scoring.py`` calls it
only when the local stage is the deciding evidence. Imports nothing from Flask or Celery.

Why: geometry alone cannot tell "the same picture" from "the same place". Two frames of one video, a
stereo pair or two renders of one scene have tens of keypoints that one similarity explains (13-43 inliers
on the benchmark, as many as a crop), because their backgrounds or one dominant plane are shared. A copy,
though, agrees *everywhere* it is not edited: warped through the fit, its pixels line up with the target's
in nearly every block, while parallax (stereo), motion (video) and re-rendering break many blocks.

Steps (block-wise normalised cross-correlation, e.g. Lewis, "Fast normalized cross-correlation", 1995):

1. Both thumbnails are the contrast-stretched working plane (``features.working_plane``) reduced to a long
   side of ``THUMB_SIDE_PX`` (64) with area averaging, 8 bits per pixel (at most 4 KB per fingerprint).
2. The fitted similarity (source working pixels -> target working pixels, on the mirrored target plane
   for a mirror) is re-expressed between thumbnail pixel grids (pixel centres, per-axis scales), and the
   side that shows the common content *larger* is warped into the frame of the side that shows it
   smaller (low-pass filtered first when it shrinks), so no side is compared against an upsampled blur.
3. The destination frame is cut into ``BLOCK_PX`` blocks; blocks at least 90% inside the warped source
   are kept; blocks flat on both sides carry no evidence and are skipped. Each remaining block agrees when
   its NCC reaches ``block_agreement_ncc`` (NCC ignores gain and offset, so colour edits do not matter).
4. The result is the fraction of agreeing blocks. Edits that cover a minority of the picture (a logo up to
   15%, a text watermark, screenshot chrome outside the overlap, padding outside the overlap) lose only
   their own blocks, so copies keep most blocks; ``min_block_agreement`` is set on the tuning split.

An earlier 32x32 thumbnail correlation found copies with logos at 0.15-0.3 and was dropped; with the
pixel-centre mapping and block statistics above, copies with logos agree on 61-100% of the blocks, with a
median block NCC of 0.94 or more (bench/image/REPORT.md, seed 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

THUMB_SIDE_PX = 64
BLOCK_PX = 8
#: A block whose luma standard deviation is below this on both sides is flat: no evidence either way.
FLAT_STD = 4.0
#: A block must be this much inside the warped source to count.
_MIN_COVERAGE = 0.9
#: Fewer informative blocks than this: the check cannot judge and passes.
MIN_BLOCKS = 3


@dataclass(frozen=True)
class Agreement:
    """How many thumbnail blocks of the overlap agree under the fitted similarity."""

    fraction: float
    blocks: int


def thumbnail(plane: np.ndarray) -> np.ndarray:
    """The working plane reduced to a long side of ``THUMB_SIDE_PX`` (area averaging), uint8."""
    h, w = plane.shape
    scale = THUMB_SIDE_PX / max(h, w, 1)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA).astype(np.uint8)


def _working_to_thumb(thumb: np.ndarray, width: int, height: int) -> np.ndarray:
    """3x3 map from working pixels to thumbnail pixels, both with integer coordinates at pixel centres."""
    sx, sy = thumb.shape[1] / max(width, 1), thumb.shape[0] / max(height, 1)
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def block_agreement(
    thumb_a: np.ndarray,
    size_a: tuple[int, int],
    thumb_b: np.ndarray,
    size_b: tuple[int, int],
    matrix: np.ndarray,
    mirror: bool,
    agree_ncc: float,
) -> Agreement:
    """Agreement of source thumbnail ``thumb_a`` with target ``thumb_b`` under ``matrix`` (see the docstring).

    ``size_*`` are the working planes' (width, height); ``matrix`` maps source working pixels to target
    working pixels (the mirrored target plane when ``mirror``), as ``verify.LocalEvidence.matrix``.
    """
    if min(thumb_a.shape) == 0 or min(thumb_b.shape) == 0:
        return Agreement(1.0, 0)  # no thumbnail (a hand-built fingerprint): nothing to judge by
    # Flipping the thumbnail is exactly the thumbnail of the mirrored plane (x -> w-1-x at pixel centres).
    tb = thumb_b[:, ::-1] if mirror else thumb_b
    full = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    to_b = _working_to_thumb(thumb_b, *size_b) @ full @ np.linalg.inv(_working_to_thumb(thumb_a, *size_a))
    scale = math.hypot(to_b[0, 0], to_b[1, 0])
    if scale <= 1.0:
        src, dst, warp = thumb_a, tb, to_b
    else:  # the target shows the content larger: warp it down into the source's frame
        src, dst, warp, scale = tb, thumb_a, np.linalg.inv(to_b), 1.0 / scale
    src_f = src.astype(np.float32)
    if scale < 0.8:
        sigma = 0.5 * math.sqrt(1.0 / (scale * scale) - 1.0)
        src_f = np.asarray(cv2.GaussianBlur(src_f, (0, 0), sigma), np.float32)
    h, w = dst.shape
    warped = cv2.warpAffine(src_f, warp[:2], (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    mask = cv2.warpAffine(np.ones_like(src_f), warp[:2], (w, h), flags=cv2.INTER_NEAREST, borderValue=0.0)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    hb, wb = h // BLOCK_PX, w // BLOCK_PX
    if hb == 0 or wb == 0:
        return Agreement(1.0, 0)

    def blocks(x: np.ndarray) -> np.ndarray:
        x = x[: hb * BLOCK_PX, : wb * BLOCK_PX].reshape(hb, BLOCK_PX, wb, BLOCK_PX)
        return x.transpose(0, 2, 1, 3).reshape(hb * wb, BLOCK_PX * BLOCK_PX)

    m = blocks(mask)
    a, b = blocks(warped), blocks(dst.astype(np.float32))
    weight = m.sum(axis=1)
    keep = weight >= _MIN_COVERAGE * BLOCK_PX * BLOCK_PX
    if not keep.any():
        return Agreement(1.0, 0)
    m, a, b, weight = m[keep], a[keep], b[keep], weight[keep]
    # Statistics over the covered pixels only (the warp leaves zeros outside the source).
    da = a - (m * a).sum(axis=1, keepdims=True) / weight[:, None]
    db = b - (m * b).sum(axis=1, keepdims=True) / weight[:, None]
    var_a = (m * da * da).sum(axis=1) / weight
    var_b = (m * db * db).sum(axis=1) / weight
    informative = np.maximum(var_a, var_b) >= FLAT_STD * FLAT_STD
    n = int(informative.sum())
    if n < MIN_BLOCKS:
        return Agreement(1.0, n)
    cov = (m * da * db).sum(axis=1) / weight
    ncc = cov[informative] / np.sqrt(np.maximum(var_a[informative] * var_b[informative], 1e-6))
    return Agreement(float(np.mean(ncc >= agree_ncc)), n)


def frame_agreement(
    thumb_a: np.ndarray,
    size_a: tuple[int, int],
    thumb_b: np.ndarray,
    size_b: tuple[int, int],
    agree_ncc: float,
    max_aspect_change: float,
) -> Agreement | None:
    """Block agreement of the two whole frames, as is and mirrored, without any keypoint fit.

    For edits that keep the frame (a text watermark, a colour edit) on smooth pictures, where the text moves
    the global hash by 60-86 bits and takes the keypoints, so no fit exists: the thumbnails themselves still
    line up nearly everywhere. ``None`` when the trimmed aspect ratios differ by more than
    ``max_aspect_change`` (relative), i.e. the frame was not kept. The better hand wins.
    """
    (wa, ha), (wb, hb) = size_a, size_b
    if min(wa, ha, wb, hb) <= 0 or abs(math.log((wa / ha) / (wb / hb))) > max_aspect_change:
        return None
    # Per-axis scales absorb the rounding of the two working sizes.
    matrix = np.array([[wb / wa, 0.0, 0.0], [0.0, hb / ha, 0.0]])
    plain = block_agreement(thumb_a, size_a, thumb_b, size_b, matrix, False, agree_ncc)
    mirror = block_agreement(thumb_a, size_a, thumb_b, size_b, matrix, True, agree_ncc)
    return max(plain, mirror, key=lambda g: (g.fraction, g.blocks))
