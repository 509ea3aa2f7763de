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
   180-angle), are described again on the mirrored plane: one extra ``compute`` (~1 ms), 16 bytes per point.
5. Only the first 128 of ORB's 256 descriptor bits are stored. ORB's tests were chosen greedily by variance
   and decorrelation (Rublee et al., section 4.3), so the leading bits carry the most; on the tuning split
   (bench/image, seed 1, 50% crops) halving the descriptor cost 2 of 37 median inliers, while doubling the
   keypoints from 128 to 256 raised them from 16 to 37. Within a fixed budget, more points win.

Stored per keypoint (38 bytes): x, y in 1/16 working pixels (u16), angle in 1/256 turns (u8), pyramid octave
(u8), the 16-byte descriptor, and the 16-byte mirror descriptor.
"""

from __future__ import annotations

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
#: Keypoint coordinates are stored in 1/16 working pixels.
XY_SCALE = 16.0
#: ORB descriptors are 32 bytes; the first 16 are stored (see the module docstring).
DESCRIPTOR_BYTES = 16
#: numpy layout of one stored keypoint (little-endian).
KEYPOINT_DTYPE = np.dtype(
    [
        ("x", "<u2"),
        ("y", "<u2"),
        ("angle", "u1"),
        ("octave", "u1"),
        ("desc", "u1", (DESCRIPTOR_BYTES,)),
        ("mirror", "u1", (DESCRIPTOR_BYTES,)),
    ]
)

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

    @property
    def xy(self) -> np.ndarray:
        """Keypoint centres in working pixels, float32 (n, 2)."""
        return np.stack([self.points["x"], self.points["y"]], axis=1).astype(np.float32) / XY_SCALE

    def mirrored_xy(self) -> np.ndarray:
        """Centres of the same keypoints on the mirrored plane (where ``mirror`` descriptors were taken)."""
        xy = self.xy
        xy[:, 0] = (self.width - 1) - xy[:, 0]
        return xy

    def angles_deg(self, mirror: bool = False) -> np.ndarray:
        """ORB orientations in degrees (image coordinates), on the mirrored plane when ``mirror``."""
        angle = self.points["angle"].astype(np.float64) * (360.0 / 256.0)
        return (180.0 - angle) % 360.0 if mirror else angle

    def descriptors(self, mirror: bool = False) -> np.ndarray:
        return np.ascontiguousarray(self.points["mirror" if mirror else "desc"])


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


def extract_features(content: np.ndarray) -> Features:
    """ORB keypoints of ``content`` (trimmed float luma) with plain and mirror descriptors."""
    return describe_plane(working_plane(content))


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
    points["x"] = np.clip(np.round(pts[:, 0] * XY_SCALE), 0, 65535)
    points["y"] = np.clip(np.round(pts[:, 1] * XY_SCALE), 0, 65535)
    points["angle"] = np.array([round(k.angle * 256.0 / 360.0) % 256 for k in kept], dtype=np.uint8)
    points["octave"] = np.array([k.octave for k in kept], dtype=np.uint8)
    points["desc"] = desc[:, :DESCRIPTOR_BYTES]
    points["mirror"] = desc_m[:, :DESCRIPTOR_BYTES]
    return Features(width, height, points)
