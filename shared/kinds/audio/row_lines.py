"""Alignments found by the frame rows alone: copies whose triplets did not survive.

Triplets need three onset peaks that all survive; a calm, sparse or quiet passage gives a few a second, and a
codec or noise then leaves too few aligned for a run (``match``), although its frame rows (``peaks``: loudness
and 16 spectral-shape bits every 64 ms) still agree along the true line on 80-97% of rows, against 2-17% by
chance (bench/audio/REPORT.md, fifth pass). This stage finds such alignments from the rows themselves, for the
unscaled, unshifted alignments of codec, resampling, EQ and noise copies:

1. Candidates: loud rows whose 16 shape bits are equal on both sides vote for their offset (Haitsma & Kalker's
   sub-fingerprint lookup, ISMIR 2002, on our 16-bit rows), each vote weighing ``1 / max(count_a, count_b)``
   of its value; a value repeated more than ``MAX_KEY_REPEAT`` times on either side (a tone, a flat spectrum)
   does not vote. The strongest ``MAX_CANDIDATES`` offsets are kept.
2. Each candidate line's rows are compared (``edges.row_agreement``'s test, row by row), and its segment is the
   stretch where the agreement sum peaks (each agreeing loud row adds ``1 - ROW_SHARE``, each other loud row
   ``-ROW_SHARE``; the maximum-sum run).
3. The segment is kept when it lasts ``MIN_S`` (and ``min_segment_s``), its rows agree on at least ``MIN_SHARE``, it is
   tonal on both sides (``tonal.continued_share``, as the low-rate runs of ``match``: an identical white
   noise file agrees with itself row by row, but its spectral maxima never continue), and the line moved by
   a few seconds agrees on at most ``MAX_SHIFTED_SHARE`` (a tone or a drone agrees with itself anywhere).

``match`` gives such a run ``row_line_evidence`` per agreeing row above the pair's own chance share (the same
line moved by a few seconds). This module imports only numpy; it knows nothing of PyAV, Flask or Celery.
"""

from __future__ import annotations

import numpy as np

from shared.kinds.audio.edges import (
    _POPCOUNT,
    ROW_MAX_FLIPS_PITCH,
    ROW_QUIET_DB,
    ROW_SHARE,
    _Rows,
    _shape_bits,
)
from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.hough import Line
from shared.kinds.audio.peaks import SUSTAIN_EVERY

MAX_KEY_REPEAT = 40
MAX_CANDIDATES = 5
#: Weighted votes a candidate offset needs (one row whose value is unique on both sides votes 1).
MIN_VOTES = 2.0
#: Candidates within this many rows of a stronger one are the same alignment.
NEIGHBOUR_ROWS = 2
#: A segment's loud rows must agree at least this often, and along the line moved by any of the chance shifts
#: (``match.CHANCE_SHIFTS_S``) at most ``MAX_SHIFTED_SHARE`` (a steady or periodic sound agrees everywhere).
MIN_SHARE = 0.5
MIN_S = 4.0
MAX_SHIFTED_SHARE = 0.5
#: Lines proposed by a few triplets (``hough.weak_lines``: any time scale and pitch shift, up to 8 a pair) are
#: many more hypotheses than the unscaled row votes, so they must last ``WEAK_MIN_S`` and agree on a share at
#: least ``WEAK_MARGIN`` above their best shifted line's. On the four splits of the audio benchmark, unrelated
#: pairs gave such stretches of up to 5.5 s at 74% (but 55% shifted) and of 3.8 s at a margin of 0.52;
#: the copies they rescue last 7-10 s at margins of 0.47-0.70.
WEAK_MIN_S = 5.0
WEAK_MARGIN = 0.3


def candidate_lines(a: AudioFingerprint, b: AudioFingerprint) -> list[Line]:
    """Up to ``MAX_CANDIDATES`` unscaled, unshifted lines voted for by equal row values, strongest first."""
    if a.rows.shape[0] == 0 or b.rows.shape[0] == 0:
        return []
    ia, ib = _loud(a), _loud(b)
    ka, kb = _shape_bits(a.rows, 0)[ia], _shape_bits(b.rows, 0)[ib]
    values_a, count_a = np.unique(ka, return_counts=True)
    order_b = np.argsort(kb, kind="stable")
    values_b, start_b, count_b = np.unique(kb[order_b], return_index=True, return_counts=True)
    common, at_a, at_b = np.intersect1d(values_a, values_b, return_indices=True)
    keep = (count_a[at_a] <= MAX_KEY_REPEAT) & (count_b[at_b] <= MAX_KEY_REPEAT)
    common, at_a, at_b = common[keep], at_a[keep], at_b[keep]
    if common.size == 0:
        return []
    # Every source row with a common value, against every target row with the same value.
    pos = np.searchsorted(common, ka)
    has = (pos < common.size) & (common[np.minimum(pos, common.size - 1)] == ka)
    rows_a, slot = ia[has], pos[has]
    n_b = count_b[at_b][slot]
    weight = 1.0 / np.maximum(count_a[at_a][slot], n_b)
    first = start_b[at_b][slot]
    rep = np.repeat(np.arange(rows_a.size), n_b)
    within = np.arange(rep.size) - np.repeat(np.cumsum(n_b) - n_b, n_b)
    offsets = ib[order_b[first[rep] + within]] - rows_a[rep]
    lo = int(offsets.min())
    votes = np.bincount(offsets - lo, weights=weight[rep])
    padded = np.concatenate([[0.0], votes, [0.0]])
    smooth = padded[:-2] + padded[1:-1] + padded[2:]  # a row's time falls between two target rows
    lines: list[Line] = []
    for d in np.argsort(-smooth, kind="stable"):
        if smooth[d] < MIN_VOTES or len(lines) == MAX_CANDIDATES:
            break
        d = max(d - 1, 0) + int(np.argmax(votes[max(d - 1, 0) : d + 2]))  # the best single offset there
        offset = (int(d) + lo) * SUSTAIN_EVERY
        if all(abs(offset - line.offset_frames) > NEIGHBOUR_ROWS * SUSTAIN_EVERY for line in lines):
            lines.append(Line(1.0, float(offset), 0.0, np.zeros(0, np.int64)))
    return lines


def segment(a: AudioFingerprint, b: AudioFingerprint, line: Line) -> tuple[float, float, float] | None:
    """(source start frame, source end frame, share of agreeing loud rows) of the line's best stretch, or None."""
    rows = _Rows(a, b, line)
    n_a, n_b = a.rows.shape[0], b.rows.shape[0]
    r = np.arange(n_a)
    pos = rows.scale * r + rows.offset
    r = r[(np.floor(pos) >= 0) & (np.ceil(pos) < n_b)]
    if r.size < 2:
        return None
    pos = rows.scale * r + rows.offset
    level = float(np.median(rows.la[r]))
    loud = rows.la[r] > level - ROW_QUIET_DB
    near = np.round(pos).astype(np.int64)
    # The gain (target dB - source dB) is unknown yet: take it from the loud rows whose shape bits agree.
    flips = rows.max_flips(ROW_MAX_FLIPS_PITCH)
    same = loud & (_POPCOUNT[(rows.sa[r] ^ rows.sb[near]) & rows.mask] <= flips)
    if not same.any():
        return None
    gain = float(np.median(rows.lb[near[same]] - rows.la[r[same]]))
    ok = np.zeros(r.size, dtype=bool)
    for mm in (np.floor(pos), np.ceil(pos)):
        ok |= rows.agree(r, mm.astype(np.int64), gain, level, flips, quiet_counts=False)
    gains = np.where(ok, 1.0 - ROW_SHARE, np.where(loud, -ROW_SHARE, 0.0))
    start, end = _max_sum_run(gains)
    n_loud = int(loud[start : end + 1].sum())
    if n_loud == 0:
        return None
    share = float(ok[start : end + 1].sum()) / n_loud
    return float(r[start] * SUSTAIN_EVERY), float(r[end] * SUSTAIN_EVERY), share


def _loud(fp: AudioFingerprint) -> np.ndarray:
    loudness = fp.rows[:, 0].astype(np.float64)
    return np.nonzero(loudness > np.median(loudness) - ROW_QUIET_DB)[0]


def _max_sum_run(x: np.ndarray) -> tuple[int, int]:
    """Indices (first, last) of the contiguous run with the largest sum (Kadane, on prefix sums)."""
    sums = np.concatenate([[0.0], np.cumsum(x)])
    lowest_before = np.minimum.accumulate(sums[:-1])
    last = int(np.argmax(sums[1:] - lowest_before))
    first = int(np.argmin(sums[: last + 1]))
    return first, last
