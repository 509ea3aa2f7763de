"""Find a picture placed inside another: rectangles bounded by straight edges ("insets").

Role: a pure numpy/OpenCV function from a luma plane to a box; ``fingerprint_image`` hashes what it finds so
the global stage can match a photo against a screenshot, web page or phone capture that shows it. Imports
nothing from Flask or Celery.

Why: a copy shown at half size inside a UI canvas keeps few of the source's keypoints (the canvas takes the
rest of the target's budget), and repeated patterns (chessboards, grids, bricks) defeat keypoint matching
altogether, but the pasted picture itself is intact. Its border is the one thing every such canvas shares:
four straight edges, axis-aligned, where the picture meets the page. Border trimming (``hashing.trim_box``)
already handles a *uniform* surround; this handles a busy one.

How, on the plane resized to a long side of ``SIDE_PX`` (160: a pixel there is under 1% of a side, and the
box is refined at full resolution afterwards):

1. **Edges.** A pixel is on a horizontal (vertical) edge when the luma steps by more than ``EDGE_LEVELS`` to
   the next row (column). Page backgrounds are flat, so even a faint picture border clears a few levels.
2. **Lines.** A row is a candidate line when its longest run of edge pixels (gaps of up to ``GAP_PX``
   bridged) spans ``MIN_SIDE_FRACTION`` of the plane and no row within ``LINE_SPACING_PX`` has a longer
   one; the ``MAX_LINES`` longest are kept, plus the plane's own borders (a picture spanning the full width
   of a phone screenshot has no edge of its own there). Columns likewise.
3. **Rectangles.** Every pair of vertical lines with every pair of horizontal ones. A side counts when its
   line covers ``MIN_SIDE_COVERAGE`` of it, at least ``MIN_QUARTER_COVERAGE`` of each quarter (a rectangle
   stretched from the picture to a neighbouring line, such as a title bar, misses a quarter), and the line
   stops at one corner at least (it does not continue past both ends over ``CORNER_REACH`` of the plane).
   The plane's borders count as sides covered at ``BORDER_COVERAGE``, below a clear edge. Rectangles cover
   ``MIN_AREA_FRACTION``-``MAX_AREA_FRACTION`` of the plane.
4. **Choice.** Ranked by the mean coverage of their sides, then by area; up to ``MAX_INSETS`` are kept, each
   overlapping a better one by less than ``MAX_OVERLAP`` (IoU). Each side is then moved to the strongest
   edge within about one plane pixel at full resolution: the hash of an inset moves by tens of bits when a
   sliver of the page is included or 2% of the picture is cut.

Measured on the tuning split (bench/image seed 1, the 101 screenshot positives): an inset within 31 bits of
the source for 76 (79 with 48 lines, at 1.5x the time); with the true paste box, 96 (the rest are pictures
whose edge is barely visible in luma, or hashes that a 2% mis-cut already moves). About 2.6 ms per image
(p95 4.6 ms) on this 2-core machine, of a fingerprint's ~20 ms. Ordinary photos often hold such rectangles
too (a window, a framed picture, a band between two straight lines): 67% of the set's images store at least
one. That costs a few hash comparisons; ``scoring.py`` only compares an inset
with the *other* image as a whole, never two insets, so two photos of one room do not match through the
framed picture on its wall. On seed 1's 19,576 ordinary negatives the closest inset is 84 bits from the
other image (the match threshold is 31).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d

SIDE_PX = 160
EDGE_LEVELS = 4.0
GAP_PX = 6
MIN_SIDE_FRACTION = 0.2
MIN_SIDE_COVERAGE = 0.7
MIN_QUARTER_COVERAGE = 0.5
#: How well the plane's own border counts as a side (a picture spanning the full width or height).
BORDER_COVERAGE = 0.8
#: A side's line may not continue past both of its corners over ``CORNER_REACH`` of the plane at more than
#: ``MAX_RUN_ON`` coverage.
CORNER_REACH = 0.04
MAX_RUN_ON = 0.5
MIN_AREA_FRACTION = 0.08
MAX_AREA_FRACTION = 0.85
#: At most this many insets, each overlapping a better-ranked one by less than ``MAX_OVERLAP`` (IoU).
MAX_INSETS = 3
#: Candidate lines per direction (the longest).
MAX_LINES = 40
LINE_SPACING_PX = 1
MAX_OVERLAP = 0.7

Box = tuple[int, int, int, int]


def _bridge(edges: np.ndarray) -> np.ndarray:
    """Close gaps of up to ``GAP_PX`` along the rows of a boolean edge map."""
    kernel = np.ones((1, 2 * GAP_PX + 1), np.uint8)
    return cv2.morphologyEx(edges.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)


def _longest_runs(edges: np.ndarray) -> np.ndarray:
    """The longest run of True in each row of a boolean map."""
    padded = np.zeros((edges.shape[0], edges.shape[1] + 2), np.int8)
    padded[:, 1:-1] = edges
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)  # row-major: the k-th start and end of a row belong to one run
    longest = np.zeros(edges.shape[0], np.int64)
    np.maximum.at(longest, rows, ends - starts)
    return longest


def _lines(edges: np.ndarray, min_len: float) -> np.ndarray:
    """Boundaries (1..n-1 for an n-row plane; edge row r lies at boundary r + 1) that hold a straight line.

    A row qualifies when its longest bridged run reaches ``min_len`` and no row within ``LINE_SPACING_PX``
    has a longer one (an edge blurred over two rows counts once); the ``MAX_LINES`` longest are kept. The
    plane's own borders, 0 and n, are always lines.
    """
    runs = _longest_runs(_bridge(edges))
    peak = (runs >= min_len) & (runs >= maximum_filter1d(runs, 2 * LINE_SPACING_PX + 1, mode="constant"))
    rows = np.nonzero(peak)[0]
    rows = rows[np.argsort(-runs[rows], kind="stable")[:MAX_LINES]]
    return np.unique(np.concatenate([[0, edges.shape[0] + 1], rows + 1]))


def _cumulative(edges: np.ndarray) -> np.ndarray:
    """``cum[b, x]``: edge pixels left of column x on boundary b (borders 0 and n count as full lines)."""
    n, width = edges.shape[0] + 1, edges.shape[1]
    cum = np.zeros((n + 1, width + 1), np.int32)
    cum[1:n, 1:] = np.cumsum(edges, axis=1)
    cum[0, 1:] = cum[n, 1:] = np.arange(1, width + 1)
    return cum


def _spans(lines: np.ndarray, min_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, of lines at least ``min_px`` apart."""
    i, j = np.triu_indices(len(lines), 1)
    keep = lines[j] - lines[i] >= min_px
    return i[keep], j[keep]


def _coverage(cum: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """How much of each span each line (row of ``cum``) covers: the overall share where every quarter of the
    span holds at least ``MIN_QUARTER_COVERAGE`` of edge pixels, else 0 (a side that only starts part-way
    is not a side: a rectangle stretched past the picture to a neighbouring line loses a quarter)."""
    cuts = [start + (end - start) * k // 4 for k in range(5)]  # cuts[0] is start, cuts[4] end
    at = [cum[:, c] for c in cuts]  # each column gathered once
    share = (at[4] - at[0]) / (end - start)
    # A side must also stop at one of its corners at least: the line does not run on past both ends
    # (a rectangle stretched to a page-wide line, such as a title bar's edge, does not qualify).
    length = cum.shape[1] - 1
    reach = max(3, round(CORNER_REACH * length))
    before = (at[0] - cum[:, np.maximum(start - reach, 0)]) / reach
    after = (cum[:, np.minimum(end + reach, length)] - at[4]) / reach
    side = np.minimum(before, after) < MAX_RUN_ON
    for k in range(4):
        side &= (at[k + 1] - at[k]) >= MIN_QUARTER_COVERAGE * (cuts[k + 1] - cuts[k])
    return np.where(side, share, 0.0)


def find_insets(luma: np.ndarray, limit: int = MAX_INSETS) -> list[Box]:
    """Up to ``limit`` edge-bounded rectangles inside ``luma`` (left, top, right, bottom; exclusive), best first."""
    h0, w0 = luma.shape
    scale = min(1.0, SIDE_PX / max(h0, w0))
    plane = luma if scale == 1.0 else cv2.resize(
        luma, (max(1, round(w0 * scale)), max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA
    )
    h, w = plane.shape
    if min(h, w) < 16:
        return []
    plane = plane.astype(np.float32)
    horizontal = np.abs(np.diff(plane, axis=0)) > EDGE_LEVELS  # (h - 1, w): steps between rows
    vertical = (np.abs(np.diff(plane, axis=1)) > EDGE_LEVELS).T  # (w - 1, h): steps between columns
    ys, xs = _lines(horizontal, MIN_SIDE_FRACTION * w), _lines(vertical, MIN_SIDE_FRACTION * h)
    cum_h, cum_v = _cumulative(horizontal)[ys], _cumulative(vertical)[xs]
    # Every (left, right) pair of vertical lines and every (top, bottom) pair of horizontal ones.
    xi, xj = _spans(xs, MIN_SIDE_FRACTION * w)
    yi, yj = _spans(ys, MIN_SIDE_FRACTION * h)
    width_px, height_px = xs[xj] - xs[xi], ys[yj] - ys[yi]
    cover_h = _coverage(cum_h, xs[xi], xs[xj])  # (horizontal lines, column spans)
    cover_v = _coverage(cum_v, ys[yi], ys[yj])  # (vertical lines, row spans)
    # The plane's own borders count as sides covered at ``BORDER_COVERAGE``.
    cover_h[(ys == 0) | (ys == h)] = BORDER_COVERAGE
    cover_v[(xs == 0) | (xs == w)] = BORDER_COVERAGE
    # Only spans whose two lines are sides somewhere, and that two perpendicular lines cover, can hold a
    # rectangle; dropping the rest first keeps the (row spans x column spans) table small.
    covers_h, covers_v = cover_h >= MIN_SIDE_COVERAGE, cover_v >= MIN_SIDE_COVERAGE
    cols = np.flatnonzero((covers_h.sum(axis=0) >= 2) & covers_v[xi].any(axis=1) & covers_v[xj].any(axis=1))
    rows = np.flatnonzero((covers_v.sum(axis=0) >= 2) & covers_h[yi].any(axis=1) & covers_h[yj].any(axis=1))
    xi, xj, width_px, cover_h, covers_h = xi[cols], xj[cols], width_px[cols], cover_h[:, cols], covers_h[:, cols]
    yi, yj, height_px, cover_v, covers_v = yi[rows], yj[rows], height_px[rows], cover_v[:, rows], covers_v[:, rows]
    area = height_px[:, None] * width_px[None, :]  # (row spans, column spans)
    valid = (area >= MIN_AREA_FRACTION * h * w) & (area <= MAX_AREA_FRACTION * h * w)
    valid &= covers_h[yi] & covers_h[yj] & (covers_v[xi] & covers_v[xj]).T
    q, p = np.nonzero(valid)
    # Rank by how clearly the four sides are edges (to the percent), then by area.
    strength = (cover_h[yi[q], p] + cover_h[yj[q], p] + cover_v[xi[p], q] + cover_v[xj[p], q]) / 4.0
    order = np.lexsort((-area[q, p], -np.round(strength, 2)))
    boxes = np.stack([xs[xi[p]], ys[yi[q]], xs[xj[p]], ys[yj[q]]], axis=1)[order]
    kept: list[np.ndarray] = []
    while len(boxes) and len(kept) < limit:
        kept.append(boxes[0])
        boxes = boxes[_overlap(boxes, boxes[0]) < MAX_OVERLAP]
    reach = max(1, round(1.5 / scale))
    return [
        _refine(luma, (round(b[0] / scale), round(b[1] / scale), min(w0, round(b[2] / scale)), min(h0, round(b[3] / scale))), reach)
        for b in kept
    ]


def _overlap(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of each of ``boxes`` (n, 4) with ``box``."""
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = iw * ih
    union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / np.maximum(union, 1)


def _refine(luma: np.ndarray, box: Box, reach_px: int) -> Box:
    """Move each side of ``box`` to the strongest straight edge within ``reach_px`` at full resolution.

    The box was found on a plane of ``SIDE_PX``; one pixel there is up to a few here, and a hash of the
    inset moves by tens of bits when a sliver of the page is included or a few percent of the picture cut.
    Ties go to the side's current place. The plane's own borders stay where they are.
    """
    h, w = luma.shape
    left, top, right, bottom = box

    def strongest(steps: np.ndarray, at: int, lo: int) -> int:
        """``steps[i]``: mean step across boundary ``lo + i``."""
        gain = steps - 1e-6 * np.abs(np.arange(lo, lo + len(steps)) - at)
        return lo + int(np.argmax(gain))

    def rows(at: int) -> int:  # the step between rows y - 1 and y along the box's width, around ``at``
        lo, hi = max(1, at - reach_px), min(h - 1, at + reach_px)
        band = luma[lo - 1 : hi + 1, left:right]
        return strongest(np.abs(np.diff(band, axis=0)).mean(axis=1), at, lo)

    def cols(at: int) -> int:  # along the refined height
        lo, hi = max(1, at - reach_px), min(w - 1, at + reach_px)
        band = luma[top:bottom, lo - 1 : hi + 1]
        return strongest(np.abs(np.diff(band, axis=1)).mean(axis=0), at, lo)

    top = rows(top) if top > 0 else top
    bottom = rows(bottom) if bottom < h else bottom
    left, right = (cols(left) if left > 0 else left), (cols(right) if right < w else right)
    return left, top, right, bottom
