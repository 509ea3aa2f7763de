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
   side of ``THUMB_SIDE_PX`` (64) with area averaging, 8 bits per pixel, stored as a **lossless** WebP
   (``encode_thumbnail``: about 2.1 KB instead of 3 KB raw). A lossy WebP (quality 80, 0.9 KB, 3.4 grey
   levels RMS of error) was tried in format v5's design and lost 6 of 1,010 held-out watermark copies and 4
   of 1,010 small rotations, all smooth pictures (moon, Cluster, ColdRipple) whose block correlations its
   smoothing lowered (bench/image/REPORT.md, v8); lossless costs 1.2 KB more and gives back exactly the
   pixels a fresh fingerprint has.
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

Three refinements (bench/image/REPORT.md, v5):

* **Fine blocks for small overlaps.** A copy shown at under half size in a screenshot covers 0-5 blocks of
  8 px in the 64 px thumbnail, too few to judge; the check then runs on 4 px blocks (``FINE_BLOCK_PX``).
* **Outlier pixels dropped in the whole-frame check** (``drop_fraction``): each block's NCC ignores the
  quarter of its pixels that fit its gain worst, the strokes of a text watermark, which otherwise spoil a
  third of the blocks of a smooth picture.
* **The original frames aligned** (``untrimmed_frame_matrix``): the whole-frame check also tries the map
  through the two trim boxes, for copies whose trims differ (a watermark stops the border walk early).

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
#: OpenCV's WebP quality above 100 selects lossless compression (``encode_thumbnail``).
THUMB_WEBP_LOSSLESS = 101
BLOCK_PX = 8
#: Blocks for small overlaps (a copy shown at under half size in a screenshot covers only 0-5 blocks of
#: ``BLOCK_PX``): 4x as many blocks, each of 16 pixels, so the confirmation can still judge.
FINE_BLOCK_PX = 4
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
    #: Block side (destination thumbnail pixels) the agreement was measured on.
    block_px: int = BLOCK_PX


def thumbnail(plane: np.ndarray) -> np.ndarray:
    """The working plane reduced to a long side of ``THUMB_SIDE_PX`` (area averaging), uint8."""
    h, w = plane.shape
    scale = THUMB_SIDE_PX / max(h, w, 1)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA).astype(np.uint8)


def encode_thumbnail(thumb: np.ndarray) -> bytes:
    """The stored (lossless WebP) form of a thumbnail; empty for an empty thumbnail."""
    if thumb.size == 0:
        return b""
    ok, code = cv2.imencode(
        ".webp", np.ascontiguousarray(thumb, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, THUMB_WEBP_LOSSLESS]
    )
    if not ok:
        raise ValueError("the thumbnail could not be encoded")
    return code.tobytes()


def decode_thumbnail(code: bytes, width: int, height: int) -> np.ndarray | None:
    """The thumbnail ``encode_thumbnail`` stored, or ``None`` when ``code`` is not a ``width`` x ``height`` one."""
    if not code:
        return np.zeros((0, 0), np.uint8) if width == 0 or height == 0 else None
    thumb = cv2.imdecode(np.frombuffer(code, np.uint8), cv2.IMREAD_GRAYSCALE)
    if thumb is None or thumb.shape != (height, width):
        return None
    return np.ascontiguousarray(thumb, np.uint8)


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
    block_px: int = BLOCK_PX,
    drop_fraction: float = 0.0,
) -> Agreement:
    """Agreement of source thumbnail ``thumb_a`` with target ``thumb_b`` under ``matrix`` (see the docstring).

    ``size_*`` are the working planes' (width, height); ``matrix`` maps source working pixels to target
    working pixels (the mirrored target plane when ``mirror``), as ``verify.LocalEvidence.matrix``.
    ``block_px``: the block side in destination thumbnail pixels (``FINE_BLOCK_PX`` for small overlaps).
    ``drop_fraction``: the NCC of each informative block ignores this fraction of its pixels, those that
    fit the block's gain worst (``_drop_outliers``; the whole-frame check, against watermark strokes).
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
    hb, wb = h // block_px, w // block_px
    if hb == 0 or wb == 0:
        return Agreement(1.0, 0)

    def blocks(x: np.ndarray) -> np.ndarray:
        x = x[: hb * block_px, : wb * block_px].reshape(hb, block_px, wb, block_px)
        return x.transpose(0, 2, 1, 3).reshape(hb * wb, block_px * block_px)

    m = blocks(mask)
    a, b = blocks(warped), blocks(dst.astype(np.float32))
    weight = m.sum(axis=1)
    keep = weight >= _MIN_COVERAGE * block_px * block_px
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
        return Agreement(1.0, n, block_px)
    if drop_fraction > 0.0:
        m, a, b = m[informative], a[informative], b[informative]
        m = _drop_outliers(m, da[informative], db[informative], drop_fraction)
        weight = m.sum(axis=1)
        da = a - (m * a).sum(axis=1, keepdims=True) / weight[:, None]
        db = b - (m * b).sum(axis=1, keepdims=True) / weight[:, None]
        var_a = (m * da * da).sum(axis=1) / weight
        var_b = (m * db * db).sum(axis=1) / weight
        informative = np.ones(len(m), bool)
    cov = (m * da * db).sum(axis=1) / weight
    ncc = cov[informative] / np.sqrt(np.maximum(var_a[informative] * var_b[informative], 1e-6))
    return Agreement(float(np.mean(ncc >= agree_ncc)), n, block_px)


def _drop_outliers(mask: np.ndarray, da: np.ndarray, db: np.ndarray, fraction: float) -> np.ndarray:
    """``mask`` without the ``fraction`` of each block's covered pixels that fit worst.

    The fit is the least-squares gain from ``da`` to ``db`` (both mean-free over the block); an overlay
    (a watermark's strokes, a few pixels of a 64 px thumbnail) shows up as the largest residuals.
    """
    gain = (mask * da * db).sum(axis=1) / np.maximum((mask * da * da).sum(axis=1), 1e-6)
    residual = np.where(mask > 0, np.abs(db - gain[:, None] * da), np.inf)
    rank = np.argsort(np.argsort(residual, axis=1), axis=1)
    keep_n = np.floor(mask.sum(axis=1) * (1.0 - fraction))
    return (mask * (rank < keep_n[:, None])).astype(np.float32)


def frame_agreement(
    thumb_a: np.ndarray,
    size_a: tuple[int, int],
    thumb_b: np.ndarray,
    size_b: tuple[int, int],
    agree_ncc: float,
    max_aspect_change: float,
    drop_fraction: float = 0.0,
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
    plain = block_agreement(thumb_a, size_a, thumb_b, size_b, matrix, False, agree_ncc, drop_fraction=drop_fraction)
    mirror = block_agreement(thumb_a, size_a, thumb_b, size_b, matrix, True, agree_ncc, drop_fraction=drop_fraction)
    return max(plain, mirror, key=lambda g: (g.fraction, g.blocks))


def untrimmed_frame_matrix(
    trim_a: tuple[int, int, int, int],
    frame_a: tuple[int, int],
    size_a: tuple[int, int],
    trim_b: tuple[int, int, int, int],
    frame_b: tuple[int, int],
    size_b: tuple[int, int],
    mirror: bool,
    max_aspect_change: float,
) -> np.ndarray | None:
    """The map from source to target working pixels if the two *original* frames show one picture.

    The working planes hold the trimmed content, and a trim can differ between copies: a smooth gradient
    along one side of a wallpaper is walked in as if it were a bar when a watermark's text stops the walk
    early, and kept as content in the original (``hashing.trim_box``). The original frames still agree,
    so this maps source working pixels to original pixels (through the trim box), to the target's original
    pixels (per-axis scales), and into its working plane (mirrored when ``mirror``). ``None`` when the
    original aspect ratios differ by more than ``max_aspect_change``.
    """
    (fwa, fha), (fwb, fhb) = frame_a, frame_b
    if min(fwa, fha, fwb, fhb) <= 0 or abs(math.log((fwa / fha) / (fwb / fhb))) > max_aspect_change:
        return None
    la, ta, ra, ba = trim_a
    lb, tb, rb, bb = trim_b
    if mirror:
        lb, rb = fwb - rb, fwb - lb
    if min(ra - la, ba - ta, rb - lb, bb - tb) <= 0:
        return None
    ax, ay = (ra - la) / size_a[0], (ba - ta) / size_a[1]  # original source pixels per working pixel
    bx, by = size_b[0] / (rb - lb), size_b[1] / (bb - tb)  # target working pixels per original pixel
    kx, ky = fwb / fwa, fhb / fha
    return np.array(
        [[ax * kx * bx, 0.0, (la * kx - lb) * bx], [0.0, ay * ky * by, (ta * ky - tb) * by]], np.float64
    )
