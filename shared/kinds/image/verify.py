"""Geometric verification of two ORB keypoint sets: matches, a RANSAC similarity, sanity checks, evidence.

Role: OpenCV, numpy and small numba loops (``_ratio_pairs``, ``_ambiguous_pairs``, ``_window_sources``);
given the ``Features`` of two fingerprints, find whether one image is a crop, canvas, rotation or mirror of
the other, and where. Imports nothing from Flask or Celery.

Steps (Lowe's ratio test, IJCV 2004; RANSAC, Fischler & Bolles 1981; ``cv2.estimateAffinePartial2D``):

1. For each hand (target as is, and target mirrored through its stored mirror descriptors), match every
   source descriptor to its two nearest target descriptors (Hamming) and keep it when the nearest is at most
   ``max_descriptor_bits`` away and clearly nearer than the second (``ratio_test``); a target keypoint is
   used once.
2. Fit a **similarity** (rotation, uniform scale, translation: 4 degrees of freedom) with RANSAC. The
   transforms we must survive (resize, crop, padding, canvas, rotation, mirror) are all similarities once
   both sides are normalised to the working size, and 4 DoF leave random matches far less room than a
   homography (8 DoF), whose degenerate fits gave unrelated images up to 20 ORB inliers (FIELD_NOTES).
3. Sanity checks, each one a reason to reject the fit:
   * scale within ``[1/max_scale_ratio, max_scale_ratio]``;
   * **containment**: one image must lie mostly inside the other under the fit (a crop lies inside its
     source, a source inside its canvas): ``max(overlap/area_source, overlap/area_target) >=
     min_containment``;
   * **spread**: on both sides, the inliers' convex hull covers ``min_inlier_spread`` of the hull of all
     keypoints inside the overlap (degenerate fits cluster their inliers on one repeated texture; measuring
     against the keypoints' hull, not the overlap's area, keeps photos whose detail sits in one region);
   * **inlier ratio**: inliers over the keypoints that fall inside the overlap (the fewer side) reach
     ``min_inlier_ratio``; a true copy re-detects a good part of them, a chance fit does not.
4. The evidence is the inlier count of the best hand; ``scoring.py`` turns it into a score.
5. Repeated patterns (chessboards, bricks) defeat the ratio test: the true partner is often the second
   nearest. When neither hand passes, a second pass keeps both candidates and fits with a scale-bounded
   RANSAC of its own (``ransac.py``); its fit is marked ``ambiguous`` and ``scoring.py`` counts it
   only when the photometric block check confirms it (bench/image/REPORT.md, v4). Its hypotheses and
   inliers must also agree with how far each matched keypoint turned (the stored ORB orientations): that
   discards most random hypotheses before they are scored, so ten times as many are drawn, and the fit
   stops locking onto wrong near-zero scales (bench/image/REPORT.md, v5). A perfectly synthetic board,
   whose X-corners have no stable orientation, gets no fit from this pass; photographed boards do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from shared.kinds.image.features import Features
from shared.kinds.image.hashing import hamming_matrix
from shared.kinds.image.ransac import MAX_TURN_GAP_DEG, scale_bounded_ransac
from shared.settings import ImageSettings

_RANSAC_ITERS = 2000
_RANSAC_CONFIDENCE = 0.995


@dataclass(frozen=True)
class LocalEvidence:
    """A verified similarity from the source working plane to the target working plane."""

    inliers: int
    mirror: bool
    #: 2x3 similarity mapping source working pixels to target working pixels (mirrored plane if ``mirror``).
    matrix: np.ndarray
    #: The part of the source (working pixels: left, top, right, bottom) that the target shows.
    overlap_source: tuple[float, float, float, float]
    inlier_ratio: float
    containment: float
    #: Found by the second pass that keeps ratio-test failures (repeated patterns); such a fit counts
    #: only when the photometric block check confirms it (``scoring.py``).
    ambiguous: bool = False

    @property
    def scale(self) -> float:
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def rotation_deg(self) -> float:
        """Clockwise on screen (image y points down), in (-180, 180]."""
        return float(math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0])))


def _neighbours(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per source descriptor, its two nearest target descriptors: (distances, indices), each (len(a), 2);
    None when either side has fewer than 2. Ties keep the lower index, as OpenCV's ``knnMatch`` and FAISS's
    ``IndexBinaryFlat`` do; the full distance matrix (``hashing.hamming_matrix``) and two ``argmin``s are
    2.5x faster here than FAISS's k-NN search (a heap per query), and give the same output."""
    if len(a) < 2 or len(b) < 2:
        return None
    dist = hamming_matrix(a, b)
    rows = np.arange(len(a))
    first = dist.argmin(axis=1)  # the first, i.e. lowest, index on ties
    nearest = dist[rows, first]
    dist[rows, first] = np.iinfo(np.int32).max
    second = dist.argmin(axis=1)
    return np.stack([nearest, dist[rows, second]], axis=1), np.stack([first, second], axis=1)


def _matches(
    knn: tuple[np.ndarray, np.ndarray] | None, settings: ImageSettings, ambiguous: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (source, target) passing the distance cap and ratio test, one per target keypoint,
    from the two nearest neighbours (``_neighbours``): per target, its nearest source (the first on ties),
    targets in order of first appearance (``_ratio_pairs``).

    ``ambiguous``: a source keypoint failing the ratio test contributes both its nearest and its second
    nearest target (each within the distance cap): on a chessboard or a brick wall the true partner is
    often the second one, and RANSAC, not the ratio test, then picks the consistent one. Pairs in
    (source, target) order (``_ambiguous_pairs``).

    Both are numba loops since 2026-11-29: the numpy versions (a lexsort, ``np.unique`` and an argsort; a
    sort of int64 keys) gave the same pairs on 15,554 catalog-search hands in 5-8x the time.
    """
    if knn is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, near = knn
    if ambiguous:
        return _ambiguous_pairs(dist, near, settings.max_descriptor_bits)
    return _ratio_pairs(dist, near, settings.max_descriptor_bits, settings.ratio_test)


@numba.njit(cache=True, nogil=True)
def _ratio_pairs(dist: np.ndarray, near: np.ndarray, max_bits: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """``_matches``'s ratio-test pairs: per target, the nearest passing source, the first on ties."""
    targets = 0
    for i in range(len(dist)):
        targets = max(targets, near[i, 0] + 1)
    best_bits = np.empty(targets, np.int64)
    best_source = np.full(targets, -1, np.int64)
    order = np.empty(len(dist), np.int64)  # targets in order of first appearance
    m = 0
    for i in range(len(dist)):
        bits, target = dist[i, 0], near[i, 0]
        if not (bits <= max_bits and bits < ratio * dist[i, 1]):
            continue
        if best_source[target] < 0:
            order[m] = target
            m += 1
        elif bits >= best_bits[target]:
            continue
        best_source[target], best_bits[target] = i, bits
    return best_source[order[:m]], order[:m].copy()


@numba.njit(cache=True, nogil=True)
def _ambiguous_pairs(dist: np.ndarray, near: np.ndarray, max_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``_matches``'s repeated-pattern pairs: each source with its nearest and second nearest targets within
    ``max_bits``, in (source, target) order."""
    src = np.empty(2 * len(dist), np.int64)
    dst = np.empty(2 * len(dist), np.int64)
    m = 0
    for i in range(len(dist)):
        first, second = near[i, 0], near[i, 1]
        first_ok, second_ok = dist[i, 0] <= max_bits, dist[i, 1] <= max_bits
        if first_ok and second_ok and second < first:
            first, second = second, first
        for target, ok in ((first, first_ok), (second, second_ok)):
            if ok:
                src[m], dst[m] = i, target
                m += 1
    return src[:m], dst[:m]


def _box_area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _within(xy: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return (xy[:, 0] >= box[0]) & (xy[:, 0] <= box[2]) & (xy[:, 1] >= box[1]) & (xy[:, 1] <= box[3])


def _hull_area(xy: np.ndarray) -> float:
    if len(xy) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(xy.astype(np.float32))))


def _fit(
    a: Features, b: Features, mirror: bool, knn: Neighbours, settings: ImageSettings, ambiguous: bool = False
) -> LocalEvidence | None:
    src_idx, dst_idx = knn.matches(mirror, settings, ambiguous)
    if len(src_idx) < max(settings.local_min_inliers, 3):
        return None
    a_xy = a.xy
    b_xy = b.mirrored_xy if mirror else b.xy
    p_src, p_dst = a_xy[src_idx], b_xy[dst_idx]
    if ambiguous:
        turn = b.angles_deg(mirror)[dst_idx] - a.angles_deg()[src_idx]
        matrix, mask = scale_bounded_ransac(p_src, p_dst, src_idx, dst_idx, turn, settings)
    else:
        matrix, mask = cv2.estimateAffinePartial2D(
            p_src,
            p_dst,
            method=cv2.RANSAC,
            ransacReprojThreshold=settings.ransac_reproj_px,
            maxIters=_RANSAC_ITERS,
            confidence=_RANSAC_CONFIDENCE,
        )
    if matrix is None or mask is None:
        return None
    inl = mask.ravel().astype(bool)
    n = int(inl.sum())
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    if n < settings.local_min_inliers or not (1.0 / settings.max_scale_ratio <= scale <= settings.max_scale_ratio):
        return None
    # The target's box, mapped back into the source, intersected with the source box.
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [b.width, 0], [b.width, b.height], [0, b.height]], np.float64)
    back = corners @ inverse[:, :2].T + inverse[:, 2]
    overlap = (
        max(0.0, float(back[:, 0].min())),
        max(0.0, float(back[:, 1].min())),
        min(float(a.width), float(back[:, 0].max())),
        min(float(a.height), float(back[:, 1].max())),
    )
    overlap_area = _box_area(overlap)
    # The target box in source pixels is a rotated rectangle; its area is exact through the scale.
    target_area_in_source = b.width * b.height / (scale * scale)
    containment = max(overlap_area / (a.width * a.height), overlap_area / max(target_area_in_source, 1e-6))
    if containment < settings.min_containment or overlap_area <= 0.0:
        return None
    # Keypoints of either side that lie in the overlap (target ones mapped into source pixels).
    a_in = _within(a_xy, overlap)
    b_mapped = b_xy @ inverse[:, :2].T + inverse[:, 2]
    b_in = _within(b_mapped, overlap)
    spread_src = _hull_area(p_src[inl]) / max(_hull_area(a_xy[a_in]), 1e-6)
    spread_dst = _hull_area(p_dst[inl]) / max(_hull_area(b_xy[b_in]), 1e-6)
    if min(spread_src, spread_dst) < settings.min_inlier_spread:
        return None
    in_a, in_b = int(a_in.sum()), int(b_in.sum())
    ratio = n / max(1, min(in_a, in_b))
    if ratio < settings.min_inlier_ratio:
        return None
    return LocalEvidence(n, mirror, matrix, overlap, float(ratio), float(containment), ambiguous)


class Neighbours:
    """Each hand's two nearest neighbours (``_neighbours``) and, once asked, its matches (``_matches``): what
    ``verify`` and ``inlier_bound`` share, so a compare after a bound searches and filters nothing twice."""

    def __init__(self, a: Features, b: Features) -> None:
        self._knn = {mirror: _neighbours(a.descriptors(), b.descriptors(mirror)) for mirror in (False, True)}
        self._matches: dict[tuple[bool, bool, int, float], tuple[np.ndarray, np.ndarray]] = {}

    def matches(self, mirror: bool, settings: ImageSettings, ambiguous: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``_matches`` of the ``mirror`` hand."""
        key = (mirror, ambiguous, settings.max_descriptor_bits, settings.ratio_test)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = _matches(self._knn[mirror], settings, ambiguous)
            for array in found:
                array.flags.writeable = False
        return found


#: ``inlier_bound``'s turn bins: a 2 x ``MAX_TURN_GAP_DEG`` window touches at most ``_TURN_WINDOW_BINS``.
_TURN_BIN_DEG = 10
_TURN_BINS = 360 // _TURN_BIN_DEG
_TURN_WINDOW_BINS = math.ceil(2 * MAX_TURN_GAP_DEG / _TURN_BIN_DEG) + 1


def inlier_bound(a: Features, b: Features, knn: Neighbours, settings: ImageSettings, enough: float = math.inf) -> int:
    """The most inliers ``verify`` can find, from the matches alone (no RANSAC): a plain fit's inliers are
    among its hand's ratio-test matches, one per keypoint; a repeated-pattern fit's are one per source
    keypoint and all turned within ``MAX_TURN_GAP_DEG`` of its rotation, so at most the distinct source
    keypoints whose matches fall in the best window of turns (``_window_sources``). Tens of microseconds:
    catalog search skips the RANSAC passes of candidates that cannot reach its top K
    (``scoring.compare_or_bound``). Stops early, with a bound of at least ``enough``, once it reaches that."""
    most = max(len(knn.matches(mirror, settings)[0]) for mirror in (False, True))
    for mirror in (False, True):
        if most >= enough or not settings.ambiguous_matching:
            break
        src, dst = knn.matches(mirror, settings, ambiguous=True)
        if len(src) <= most:
            continue
        turn = b.angles_deg(mirror)[dst] - a.angles_deg()[src]
        bins = (np.floor(turn % 360.0 / _TURN_BIN_DEG).astype(np.int64)) % _TURN_BINS
        most = max(most, _window_sources(src, bins))
    return most


@numba.njit(cache=True, nogil=True)
def _window_sources(src: np.ndarray, bins: np.ndarray) -> int:
    """The most distinct sources ``src`` with a match in one window of ``_TURN_WINDOW_BINS`` consecutive turn
    ``bins`` (wrapping past 360 degrees): a bitmask of bins per source, tested against each window's. The
    numpy version (a sources x bins table and its cumulative sums) took ~5x as long (2026-11-29)."""
    masks = np.zeros(src.max() + 1 if len(src) else 1, np.uint64)
    for k in range(len(src)):
        masks[src[k]] |= np.uint64(1) << np.uint64(bins[k])
    best = 0
    for start in range(_TURN_BINS):
        window = np.uint64(0)
        for j in range(_TURN_WINDOW_BINS):
            window |= np.uint64(1) << np.uint64((start + j) % _TURN_BINS)
        count = 0
        for mask in masks:
            count += (mask & window) != 0
        best = max(best, count)
    return best


def verify(a: Features, b: Features, settings: ImageSettings, knn: Neighbours | None = None) -> LocalEvidence | None:
    """The best verified similarity between source ``a`` and target ``b`` (either hand), or ``None``;
    ``knn``: their ``Neighbours`` when already searched. A hand is not fitted when its matches cannot
    beat the other hand's inliers (a fit's inliers are distinct matches, one per source keypoint)."""
    best: LocalEvidence | None = None
    if knn is None:
        knn = Neighbours(a, b)
    for ambiguous in (False, True):
        if ambiguous and (best is not None or not settings.ambiguous_matching):
            break
        # The second pass is for repeated patterns (see ``_matches``), when the plain one found nothing;
        # ``scoring.py`` requires block confirmation of its fits.
        for mirror in (False, True):
            if best is not None and _distinct_sources(knn.matches(mirror, settings, ambiguous)[0]) <= best.inliers:
                continue
            found = _fit(a, b, mirror, knn, settings, ambiguous)
            if found is not None and (best is None or found.inliers > best.inliers):
                best = found
    return best


def _distinct_sources(src: np.ndarray) -> int:
    """How many distinct source keypoints ``src`` (sorted, as ``_matches`` returns them for the repeated-pattern
    pass; distinct in the plain pass) holds."""
    return int(np.count_nonzero(src[1:] != src[:-1])) + 1 if len(src) else 0
