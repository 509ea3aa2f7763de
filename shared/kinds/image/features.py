"""Compact local features: ORB keypoints of the trimmed image, with descriptors of the image and of its mirror.

Role: pure OpenCV/numpy functions from a luma plane to a small, fixed-format keypoint set stored inside the
fingerprint; no I/O, no Pillow, no Flask/Celery. ``verify.py`` matches two such sets.

Why ORB (Rublee et al., "ORB: an efficient alternative to SIFT or SURF", ICCV 2011; ``cv2.ORB``): binary
32-byte descriptors (Hamming matching in microseconds, 32 bytes to store), rotation invariant through the
intensity-centroid orientation, scale covered by an 8-level pyramid, about 4 ms per 512 px image on one core.
SIFT is about 10x slower and its 128-float descriptors would not fit a few-KB fingerprint (FIELD_NOTES).

Steps:

1. The *trimmed* content box (uniform borders removed by ``hashing.trim_box``) is resized so its long side is
   ``FEATURE_SIDE_PX``. Fixing the working size removes the 0.25x-4x resize before detection; the pyramid then
   only has to cover crops and canvases (relative scales of about 1-4).
2. Contrast is stretched (1st-99th percentile to 0-255) so brightness/contrast edits and hazy photos give the
   same FAST responses as the original.
3. ORB detects up to ``DETECT_KEYPOINTS`` with a low FAST threshold (6: a smooth wallpaper gave 12 corners at
   a threshold of 12, and none survived a crop); ``MAX_KEYPOINTS`` are kept, round-robin by response over a
   4x4 grid and three octave groups, so every part of the image and every scale keeps keypoints: a 50% crop
   still holds about half of them, and a copy shown at half size inside a canvas still meets the source's
   coarse keypoints (plain top-k by response piles keypoints onto the busiest region and the finest octave).
4. ORB is not mirror invariant (its BRIEF test pattern is not symmetric), and matching against a flipped
   image is the usual fix (FIELD_NOTES: ORB "fails on mirroring, unless you also match against the flipped
   image"). FAST and the Harris score are symmetric, so the same keypoints, reflected (x -> w-1-x, angle ->
   180-angle), are described again on the mirrored plane: one extra ``compute`` (~1 ms).
5. **A mirror-closed descriptor** (format v5). The stored 128 bits are the first 64 bits of ORB's descriptor
   of the image (tests P) followed by the first 64 bits of its descriptor on the mirrored plane (the same
   tests reflected across the keypoint's axis, P'). Mirroring the image swaps the two sets of tests, so the
   descriptor of the mirrored image is this one with its halves swapped (``descriptors(mirror=True)``):
   mirror matching costs no stored bytes, and both hands match on all 128 bits. Version 4 stored 128 bits of
   P and 128 of P' separately (32 bytes a point). ORB's tests were chosen greedily by variance and
   decorrelation (Rublee et al., section 4.3), so the leading 64 carry the most; P' bits of an image are P
   bits of its mirror, with the same statistics. Measured in bench/image/REPORT.md (v6, then v8 with insets).
6. ``MAX_KEYPOINTS`` stays 256. Fewer points would make the fingerprint smaller but lose copies shown small
   (REPORT.md, v6, seed 1: 192 points = 5.1 KB lost 2 of 101 screenshots and 2 of 101 50% crops; 128 points
   = 3.8 KB lost 10 screenshots). On the tuning split, doubling the keypoints from 128 to 256 had raised
   the median inliers of 50% crops from 16 to 37, while halving the descriptor cost 2 of 37.

Stored per keypoint (20 bytes, ``pack_points``): x, y in 1/4 working pixels (11 bits each: the working plane
is at most 512 px), angle in 1/128 turns (7 bits), pyramid octave (3 bits), then the 16-byte descriptor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

FEATURE_SIDE_PX = 512
DETECT_KEYPOINTS = 1200
MAX_KEYPOINTS = 256
GRID_CELLS = 4
#: Octaves per group in the round-robin (groups 0-1, 2-3, 4+).
OCTAVE_GROUP = 2
FAST_THRESHOLD = 6  # low: contrast is stretched first, and smooth wallpapers need weak corners
#: Keypoint coordinates are stored in 1/4 working pixels, 11 bits each (the plane is at most 512 px).
XY_SCALE = 4.0
_XY_BITS = 11
#: Orientations are stored in 1/128 turns (7 bits); pyramid octaves in 3 bits.
_ANGLE_BITS = 7
ANGLE_STEPS = 1 << _ANGLE_BITS
#: Bytes of the stored descriptor: 8 of ORB's descriptor of the image, 8 of the mirrored plane's.
DESCRIPTOR_BYTES = 16
_HALF = DESCRIPTOR_BYTES // 2
#: numpy layout of one keypoint in memory; ``pack_points`` stores it in ``STORED_POINT_BYTES``.
KEYPOINT_DTYPE = np.dtype(
    [
        ("x", "<u2"),
        ("y", "<u2"),
        ("angle", "u1"),
        ("octave", "u1"),
        ("desc", "u1", (DESCRIPTOR_BYTES,)),
    ]
)
STORED_POINT_BYTES = 4 + DESCRIPTOR_BYTES
_PACKED_DTYPE = np.dtype([("geometry", "<u4"), ("desc", "u1", (DESCRIPTOR_BYTES,))])

_ORB_SCALE_FACTOR = 1.2
_ORB_LEVELS = 8
_ORB_PATCH = 31
_ORB_FIRST_LEVEL = 0


@dataclass(frozen=True)
class Features:
    """Keypoints on the working plane of size ``width`` x ``height`` (the trimmed content, resized)."""

    width: int
    height: int
    points: np.ndarray  # KEYPOINT_DTYPE, shape (n,)

    @functools.cached_property
    def xy(self) -> np.ndarray:
        """Keypoint centres in working pixels, float32 (n, 2), read-only (computed once: a catalog search
        fits one query's keypoints against every candidate's)."""
        xy = np.stack([self.points["x"], self.points["y"]], axis=1).astype(np.float32) / XY_SCALE
        xy.flags.writeable = False
        return xy

    @functools.cached_property
    def mirrored_xy(self) -> np.ndarray:
        """Centres of the same keypoints on the mirrored plane (where ``mirror`` descriptors were taken),
        read-only."""
        xy = self.xy.copy()
        xy[:, 0] = (self.width - 1) - xy[:, 0]
        xy.flags.writeable = False
        return xy

    def angles_deg(self, mirror: bool = False) -> np.ndarray:
        """ORB orientations in degrees (image coordinates), on the mirrored plane when ``mirror``."""
        angle = self.points["angle"].astype(np.float64) * (360.0 / ANGLE_STEPS)
        return (180.0 - angle) % 360.0 if mirror else angle

    def descriptors(self, mirror: bool = False) -> np.ndarray:
        """(n, 16) uint8; with ``mirror``, the descriptors of the same keypoints on the mirrored plane.

        The stored descriptor is [plain tests | reflected tests]; mirroring swaps the two (module docstring).
        """
        desc = self.points["desc"]
        if mirror:
            desc = np.concatenate([desc[:, _HALF:], desc[:, :_HALF]], axis=1)
        return np.ascontiguousarray(desc)


def pack_points(points: np.ndarray) -> bytes:
    """``KEYPOINT_DTYPE`` points as stored: a little-endian u32 (x | y << 11 | angle << 22 | octave << 29)
    and the descriptor, ``STORED_POINT_BYTES`` each."""
    packed = np.zeros(len(points), _PACKED_DTYPE)
    geometry = points["x"].astype(np.uint32) | (points["y"].astype(np.uint32) << _XY_BITS)
    geometry |= points["angle"].astype(np.uint32) << (2 * _XY_BITS)
    geometry |= points["octave"].astype(np.uint32) << (2 * _XY_BITS + _ANGLE_BITS)
    packed["geometry"] = geometry
    packed["desc"] = points["desc"]
    return packed.tobytes()


def unpack_points(data: bytes) -> np.ndarray:
    """The inverse of ``pack_points`` (``len(data)`` must be a multiple of ``STORED_POINT_BYTES``)."""
    packed = np.frombuffer(data, _PACKED_DTYPE)
    geometry = packed["geometry"]
    points = np.zeros(len(packed), KEYPOINT_DTYPE)
    xy_mask = (1 << _XY_BITS) - 1
    points["x"] = geometry & xy_mask
    points["y"] = (geometry >> _XY_BITS) & xy_mask
    points["angle"] = (geometry >> (2 * _XY_BITS)) & (ANGLE_STEPS - 1)
    points["octave"] = geometry >> (2 * _XY_BITS + _ANGLE_BITS)
    points["desc"] = packed["desc"]
    return points


def _orb() -> cv2.ORB:
    return cv2.ORB_create(  # type: ignore[attr-defined]  # OpenCV's stubs miss the factory
        nfeatures=DETECT_KEYPOINTS,
        scaleFactor=_ORB_SCALE_FACTOR,
        nlevels=_ORB_LEVELS,
        edgeThreshold=_ORB_PATCH,
        patchSize=_ORB_PATCH,
        fastThreshold=FAST_THRESHOLD,
        firstLevel=_ORB_FIRST_LEVEL,
    )


def working_plane(content: np.ndarray) -> np.ndarray:
    """The trimmed luma resized to a long side of ``FEATURE_SIDE_PX``, contrast-stretched, as uint8."""
    h, w = content.shape
    scale = FEATURE_SIDE_PX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    plane = cv2.resize(content, size, interpolation=interp)
    sample = plane[:: max(1, plane.shape[0] // 128), :: max(1, plane.shape[1] // 128)]
    low, high = np.percentile(sample, (1.0, 99.0))
    span = max(float(high - low), 8.0)  # do not blow sensor noise of a blank image up to full range
    stretched = (plane - float(low)) * (255.0 / span)
    return np.clip(stretched, 0.0, 255.0).astype(np.uint8)


def _spread(keypoints: tuple[cv2.KeyPoint, ...], width: int, height: int) -> list[cv2.KeyPoint]:
    """Up to ``MAX_KEYPOINTS``, taken round-robin by response from a grid of cells x octave groups.

    The queues are the ``GRID_CELLS`` x ``GRID_CELLS`` cells, each split by octave group (octaves
    0-1, 2-3, 4+), so coarse keypoints survive next to busy fine detail: a copy shown smaller (a photo
    inside a screenshot at half size) is matched by the source's coarse octaves.
    """
    if not keypoints:
        return []
    xy = cv2.KeyPoint_convert(keypoints)  # type: ignore[attr-defined]
    response = np.array([k.response for k in keypoints], np.float32)
    octave = np.array([k.octave for k in keypoints], np.int64)
    cx = np.minimum((xy[:, 0] * GRID_CELLS / width).astype(np.int64), GRID_CELLS - 1)
    cy = np.minimum((xy[:, 1] * GRID_CELLS / height).astype(np.int64), GRID_CELLS - 1)
    queue = (cy * GRID_CELLS + cx) * 3 + np.minimum(octave // OCTAVE_GROUP, 2)
    order = np.lexsort((-response, queue))  # by queue, strongest first within a queue
    sorted_queue = queue[order]
    first = np.searchsorted(sorted_queue, sorted_queue, side="left")
    rank = np.arange(len(order)) - first
    # Round r takes the r-th strongest of every queue; within a round, stronger queues first.
    best_of_queue = np.zeros(queue.max() + 1, np.float32)
    np.maximum.at(best_of_queue, queue, response)
    pick = np.lexsort((-best_of_queue[sorted_queue], rank))[:MAX_KEYPOINTS]
    return [keypoints[int(i)] for i in order[pick]]


def describe_plane(plane: np.ndarray) -> Features:
    """ORB keypoints of a working plane (``working_plane``'s output) with plain and mirror descriptors."""
    height, width = plane.shape
    orb = _orb()
    empty = Features(width, height, np.zeros(0, KEYPOINT_DTYPE))
    if min(height, width) <= 2 * _ORB_PATCH:
        return empty
    chosen = _spread(tuple(orb.detect(plane, None)), width, height)
    if not chosen:
        return empty
    # ORB.compute regroups keypoints by octave; sort first so the output order is the input order.
    chosen.sort(key=lambda k: k.octave)
    kept, desc = orb.compute(plane, chosen)
    if desc is None or len(kept) == 0:
        return empty
    flipped = [
        cv2.KeyPoint((width - 1) - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave)
        for k in kept
    ]
    kept_m, desc_m = orb.compute(np.ascontiguousarray(plane[:, ::-1]), flipped)
    if desc_m is None or len(kept_m) != len(kept):
        # Should not happen (border distances are symmetric); fall back to no mirror evidence.
        desc_m = np.zeros_like(desc)
    points = np.zeros(len(kept), KEYPOINT_DTYPE)
    pts = np.array([k.pt for k in kept], dtype=np.float64)
    xy_max = (1 << _XY_BITS) - 1
    points["x"] = np.clip(np.round(pts[:, 0] * XY_SCALE), 0, xy_max)
    points["y"] = np.clip(np.round(pts[:, 1] * XY_SCALE), 0, xy_max)
    points["angle"] = np.array(
        [round(k.angle * ANGLE_STEPS / 360.0) % ANGLE_STEPS for k in kept], dtype=np.uint8
    )
    points["octave"] = np.array([min(k.octave, 7) for k in kept], dtype=np.uint8)
    points["desc"] = np.concatenate([desc[:, :_HALF], desc_m[:, :_HALF]], axis=1)
    return Features(width, height, points)
