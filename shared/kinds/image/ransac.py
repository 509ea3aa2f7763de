"""The repeated-pattern pass's RANSAC: a scale-bounded, turn-checked similarity over ambiguous matches.

Role: ``verify.py``'s second pass (chessboards, bricks: the true partner is often a keypoint's second
nearest, so both are kept) fits with this instead of OpenCV's RANSAC, which collapses onto one repeated
target point. Numpy, one numba kernel (``_best_hypothesis``) and OpenCV's LMEDS refit; imports nothing
from Flask or Celery.

Every unrelated pair a compare sees fails the plain pass and comes here, twice (both hands): in catalog
search that is most of the compares a new upload makes. The kernel scores each hypothesis over the
matches whose keypoints turned within ``MAX_TURN_GAP_DEG`` of its rotation (``_count_agreeing``: the
matches sorted by turn, a window of them), since no other match can be its inlier: the same counts, from
about a sixth of the matches on an unrelated pair, whose turns are spread all round. That took an
unrelated compare from ~1.31 to ~0.97 ms (2,000 random pairs of the catalog benchmark's real
fingerprints; 4,958 compares, copies included, gave identical scores and explanations). The numpy
version the kernel replaced (2026-11-27) built a hypotheses x matches matrix (400 x ~230 at the median)
and spent ~0.9 ms a hand on it. The kernel's residual is the direct
``|z * src + t - dst|^2``; the matrix form's was the expanded square, with a 1e-6 px^2 slack for its
rounding, which is kept here: quarter-pixel keypoints do hit the threshold exactly.
"""

from __future__ import annotations

import functools
import math

import cv2
import numba
import numpy as np

from shared.settings import ImageSettings

#: Random 2-match draws, and the most hypotheses scored among those whose scale and keypoint turns are
#: consistent.
AMBIGUOUS_DRAWS = 4000
AMBIGUOUS_HYPOTHESES = 400
#: A match agrees with a rotation when its keypoints turned by it within this many degrees.
MAX_TURN_GAP_DEG = 30.0
#: Slack on squared reprojection distances (px^2).
_SQUARED_SLACK_PX2 = 1e-6
#: How far past ``MAX_TURN_GAP_DEG`` the kernel looks for agreeing turns (the agreement test is a dot
#: product of unit vectors: its rounding is ~1e-15, far below this).
_TURN_WINDOW_MARGIN_DEG = 1.0
#: Two draws closer than this (source px) say nothing about rotation and scale.
_MIN_BASELINE_PX = 4.0


def angle_gap_deg(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """|a - b| in degrees, wrapped to [0, 180]."""
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


@functools.lru_cache(maxsize=1024)
def _draws(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The random match pairs among ``n`` matches: seeded, so the same pair of images always gets the same
    score, and cached per ``n`` (at most 2 x 256 matches: 8 MB at most, as int16), since seeding a
    generator cost as much as a tenth of the pass."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, AMBIGUOUS_DRAWS), rng.integers(0, n, AMBIGUOUS_DRAWS)
    small = np.int16 if n <= np.iinfo(np.int16).max else np.int64
    i, j = i.astype(small), j.astype(small)
    i.flags.writeable = j.flags.writeable = False
    return i, j


@numba.njit(cache=True, nogil=True, inline="always")
def _agrees(
    m: int, zr: float, zi: float, tr: float, ti: float, ur: float, ui: float, src: np.ndarray, dst: np.ndarray,
    turn: np.ndarray, max_sq_px2: float, min_cos: float,
) -> bool:
    """Whether match ``m`` is an inlier of ``dst = z * src + t`` (rotation ``u``): it lands within the
    reprojection radius and its keypoint turned by ``u``."""
    rx = zr * src[m, 0] - zi * src[m, 1] + tr - dst[m, 0]
    ry = zr * src[m, 1] + zi * src[m, 0] + ti - dst[m, 1]
    return rx * rx + ry * ry <= max_sq_px2 and turn[m, 0] * ur + turn[m, 1] * ui >= min_cos


@numba.njit(cache=True, nogil=True)
def _count_agreeing(
    zr: float, zi: float, tr: float, ti: float, ur: float, ui: float, src: np.ndarray, dst: np.ndarray,
    turn: np.ndarray, by_turn: np.ndarray, turn_sorted_deg: np.ndarray, window_deg: float, max_sq_px2: float,
    min_cos: float,
) -> int:
    """How many matches ``_agrees`` with the hypothesis, testing only those whose turn lies within
    ``window_deg`` of its rotation ``u``: one range of the sorted turns, or two where it wraps past 0/360."""
    n = len(by_turn)
    rotation = math.degrees(math.atan2(ui, ur)) % 360.0
    count = 0
    lo = np.searchsorted(turn_sorted_deg, rotation - window_deg)
    hi = np.searchsorted(turn_sorted_deg, rotation + window_deg, side="right")
    for k in range(lo, hi):
        count += _agrees(by_turn[k], zr, zi, tr, ti, ur, ui, src, dst, turn, max_sq_px2, min_cos)
    if rotation - window_deg < 0.0:
        for k in range(np.searchsorted(turn_sorted_deg, rotation - window_deg + 360.0), n):
            count += _agrees(by_turn[k], zr, zi, tr, ti, ur, ui, src, dst, turn, max_sq_px2, min_cos)
    if rotation + window_deg >= 360.0:
        for k in range(0, np.searchsorted(turn_sorted_deg, rotation + window_deg - 360.0, side="right")):
            count += _agrees(by_turn[k], zr, zi, tr, ti, ur, ui, src, dst, turn, max_sq_px2, min_cos)
    return count


@numba.njit(cache=True, nogil=True)
def _best_hypothesis(
    draw_i: np.ndarray, draw_j: np.ndarray, src_idx: np.ndarray, dst_idx: np.ndarray, src: np.ndarray,
    dst: np.ndarray, turn: np.ndarray, by_turn: np.ndarray, turn_sorted_deg: np.ndarray, min_scale: float,
    max_scale: float, min_cos: float, window_deg: float, max_sq_px2: float, max_hypotheses: int,
) -> np.ndarray:
    """The inlier mask of the best of the first ``max_hypotheses`` admissible draws (the first best on ties;
    all False when none is admissible). ``src``, ``dst``: the matches' (n, 2) points; ``turn``: (n, 2), how
    far each match's keypoint turned, as a unit vector (cos, sin); ``by_turn``: the matches in order of
    that turn, ``turn_sorted_deg`` their turns in [0, 360) in that order.

    A draw of matches ``(i, j)`` is admissible when they use distinct source and target keypoints, lie at
    least ``_MIN_BASELINE_PX`` apart, and give a similarity ``dst = z * src + t`` (as complex numbers) whose
    scale is within bounds and whose rotation both matches turned by (within ``min_cos``). A match is its
    inlier when it lands within the reprojection radius and turned by its rotation too, so only the matches
    whose turn lies within ``window_deg`` (the ``min_cos`` angle and a margin for rounding) are tested
    (``_count_agreeing``)."""
    n = len(src)
    best_count = -1
    best = np.zeros(6)  # z, t, u as (real, imag) pairs
    scored = 0
    for k in range(len(draw_i)):
        i, j = draw_i[k], draw_j[k]
        if i == j or src_idx[i] == src_idx[j] or dst_idx[i] == dst_idx[j]:
            continue
        sx, sy = src[j, 0] - src[i, 0], src[j, 1] - src[i, 1]
        base2 = sx * sx + sy * sy
        if base2 <= _MIN_BASELINE_PX * _MIN_BASELINE_PX:
            continue
        dx, dy = dst[j, 0] - dst[i, 0], dst[j, 1] - dst[i, 1]
        zr, zi = (dx * sx + dy * sy) / base2, (dy * sx - dx * sy) / base2
        scale = math.sqrt(zr * zr + zi * zi)
        if not min_scale <= scale <= max_scale:
            continue
        ur, ui = zr / max(scale, 1e-12), zi / max(scale, 1e-12)
        if turn[i, 0] * ur + turn[i, 1] * ui < min_cos or turn[j, 0] * ur + turn[j, 1] * ui < min_cos:
            continue
        tr = dst[i, 0] - (zr * src[i, 0] - zi * src[i, 1])
        ti = dst[i, 1] - (zr * src[i, 1] + zi * src[i, 0])
        count = _count_agreeing(zr, zi, tr, ti, ur, ui, src, dst, turn, by_turn, turn_sorted_deg, window_deg,
                                max_sq_px2, min_cos)
        if count > best_count:
            best_count = count
            best[0], best[1], best[2], best[3], best[4], best[5] = zr, zi, tr, ti, ur, ui
        scored += 1
        if scored == max_hypotheses:
            break
    mask = np.zeros(n, np.bool_)
    if best_count < 0:
        return mask
    zr, zi, tr, ti, ur, ui = best[0], best[1], best[2], best[3], best[4], best[5]
    for m in range(n):
        mask[m] = _agrees(m, zr, zi, tr, ti, ur, ui, src, dst, turn, max_sq_px2, min_cos)
    return mask


def scale_bounded_ransac(
    p_src: np.ndarray,
    p_dst: np.ndarray,
    src_idx: np.ndarray,
    dst_idx: np.ndarray,
    turn_deg: np.ndarray,
    settings: ImageSettings,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """RANSAC similarity for ambiguous matches: ``(2x3 matrix, uint8 inlier mask)`` or ``(None, None)``.

    With both candidates kept, many source points share a target point, and a near-zero scale that maps
    them all onto it "explains" them; so hypotheses (from 2 random matches) outside the allowed scale
    range are dropped. Each match also says how far its keypoint turned (``turn_deg``: target ORB angle
    minus source ORB angle); a true copy's matches turn by the fit's rotation (within ~10 degrees for 90% of
    them on the tuning split), so a hypothesis whose two matches disagree with its own rotation is dropped
    before it is scored, and only matches that agree count as its inliers. That rejects most random
    hypotheses for free, so many more can be drawn: with ~30 true matches among ~450 candidates, 400 draws
    held about 2 all-true pairs, and the fit often locked onto a wrong, near-zero scale. The best
    hypothesis is refitted and its inliers made one-to-one, unless it has fewer inliers than a fit needs
    (``local_min_inliers``): then there is no fit. Most hands of an unrelated pair end there, and the LMEDS
    refit and its recount were ~20% of such a compare. Refitting such a hypothesis reached
    ``local_min_inliers`` (before the fit's other checks) on 2 of 3,143 hands of catalog search
    (2026-11-29); the image benchmark's results did not change (``bench/image/REPORT.md``).
    """
    n = len(p_src)
    draw_i, draw_j = _draws(n)
    turn = np.radians(turn_deg)
    turn_360 = np.asarray(turn_deg, np.float64) % 360.0
    by_turn = np.argsort(turn_360, kind="stable")
    best = _best_hypothesis(
        draw_i, draw_j, src_idx, dst_idx, p_src.astype(np.float64), p_dst.astype(np.float64),
        np.stack([np.cos(turn), np.sin(turn)], axis=1), by_turn, turn_360[by_turn],
        1.0 / settings.max_scale_ratio, settings.max_scale_ratio, math.cos(math.radians(MAX_TURN_GAP_DEG)),
        MAX_TURN_GAP_DEG + _TURN_WINDOW_MARGIN_DEG, settings.ransac_reproj_px**2 + _SQUARED_SLACK_PX2,
        AMBIGUOUS_HYPOTHESES,
    )
    if best.sum() < max(2, settings.local_min_inliers):
        return None, None  # too few to be a fit: not refitted (see the docstring)
    matrix, _ = cv2.estimateAffinePartial2D(p_src[best], p_dst[best], method=cv2.LMEDS)
    if matrix is None:
        return None, None
    residual = np.linalg.norm(p_src @ matrix[:, :2].T + matrix[:, 2] - p_dst, axis=1)
    mask = residual <= settings.ransac_reproj_px
    fitted_rotation = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
    mask &= angle_gap_deg(turn_deg, fitted_rotation) <= MAX_TURN_GAP_DEG
    # One inlier per source and per target point (the nearest wins), as in the plain pass.
    order = np.argsort(residual)
    seen_s: set[int] = set()
    seen_d: set[int] = set()
    unique = np.zeros(n, bool)
    for k in order[mask[order]]:
        if int(src_idx[k]) not in seen_s and int(dst_idx[k]) not in seen_d:
            unique[k] = True
            seen_s.add(int(src_idx[k]))
            seen_d.add(int(dst_idx[k]))
    return matrix, unique.astype(np.uint8)
