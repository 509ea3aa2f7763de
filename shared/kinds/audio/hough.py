"""Candidate alignments between two triplet fingerprints: hash pairs, a Hough vote over lines, robust fits.

A source triplet at frame ``ts`` that reappears in the target at ``tt`` says ``tt = a * ts + b`` for the
time-scale factor ``a`` (target seconds per source second) and offset ``b`` of its alignment. Pairs are
found by equal hash values (with the source's probe variants, see ``triplets``); each pair also carries
its own evidence about ``a`` (the ratio of the two spans ``t3 - t1``) and about the pitch factor (the
difference of the anchors' band positions).

1. Pairs: every source hash variant is looked up in the sorted target hashes. Hash values repeated more
   than ``MAX_REPEAT`` times on either side are stop words (tones, loops, jingles). A pair weighs
   ``1 / max(count_source, count_target)``, so a value repeated n times counts about once.
2. Pairs whose span ratio or pitch difference lies outside the allowed factors are dropped.
3. Hough vote (Hough 1962; the line detector of Panako and of MPEG-7 ``signature``): each pair votes in a
   grid of ``a`` values compatible with its span ratio, for the cell ``(a, round((tt - a * ts) / B_STEP))``.
4. ``lines`` repeatedly takes the strongest cell, gathers the pairs near its line, keeps those that agree
   on the pitch shift (median), refits ``a`` and ``b`` (weighted least squares over a long run; over a short
   one, ``a`` from the ratio of summed spans, which the grid cannot resolve; ``a`` clipped to the allowed
   range) and tightens the tolerance, then removes those pairs' votes and looks again, which finds
   several alignments (a reused or reordered source).

This module imports only numpy; it knows nothing of PyAV, Flask or Celery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.peaks import BANDS_PER_OCTAVE
from shared.kinds.audio.triplets import probe_variants

MAX_REPEAT = 40
#: At most this many hash pairs are examined (a memory and time bound for hours-long inputs).
MAX_PAIRS = 2_000_000
#: Hough grid: steps of ``a`` and of the offset ``b`` (frames of 16 ms).
A_STEP = 0.004
B_STEP = 12
#: A pair votes for grid values of ``a`` whose predicted span is within this many frames of its own.
SPAN_TOL_FRAMES = 1.6
#: Pairs this close (frames) to a fitted line are its inliers; the first gathering is wider.
INLIER_TOL_FRAMES = 4.0
#: Inliers must agree on the pitch shift within this many bands of their median.
PITCH_TOL_BANDS = 1.25
MIN_CELL_VOTES = 3.0
#: The slope is refitted only when the inliers span this many source frames (4 s).
MIN_SLOPE_SPAN_FRAMES = 250
MAX_LINES = 24
#: Weak lines (``weak_lines``): the pairs no line took vote in a grid that also bins the pitch shift
#: (``WEAK_PITCH_BIN`` bands), each vote counted in the 2 x 2 neighbouring offset and pitch cells, so a copy
#: whose few surviving triplets split across a cell border still adds up. At most ``MAX_WEAK_LINES`` are
#: proposed, each from a cell of at least ``MIN_WEAK_VOTES`` weighted votes.
WEAK_PITCH_BIN = 1.0
MIN_WEAK_VOTES = 1.0
MAX_WEAK_LINES = 8


@dataclass(frozen=True)
class Pairs:
    """Matching triplets: index into the source and target hash arrays, weight, and derived values."""

    src: np.ndarray  # int64
    tgt: np.ndarray  # int64
    weight: np.ndarray  # float64
    ts: np.ndarray  # float64, source anchor frame
    tt: np.ndarray  # float64, target anchor frame
    pitch_bands: np.ndarray  # float64, target anchor band - source anchor band
    span_s: np.ndarray  # float64, source span t3 - t1 (frames)
    span_t: np.ndarray  # float64, target span

    def __len__(self) -> int:
        return int(self.src.size)


@dataclass(frozen=True)
class Line:
    """One alignment ``tt = scale * ts + offset`` (frames) and the pairs that lie on it."""

    scale: float
    offset_frames: float
    pitch_bands: float
    members: np.ndarray  # int64 indices into Pairs


def find_pairs(a: AudioFingerprint, b: AudioFingerprint, max_scale: float, max_pitch: float) -> Pairs:
    """All (source, target) triplet pairs with equal hashes whose span ratio and pitch shift are allowed."""
    values, owner = probe_variants(a.hashes, a.probes)
    # Hashes are 16-bit: count tables stand in for sorted searches (the target's entries of a value are the
    # run of ``order_b`` that starts at ``start_b[value]``).
    order_b = np.argsort(b.hashes, kind="stable")
    count_b = np.bincount(b.hashes, minlength=1 << 16)
    start_b = np.cumsum(count_b) - count_b
    lo, n = start_b[values], count_b[values]
    count_a = np.bincount(a.hashes, minlength=1 << 16)[a.hashes[owner]]
    ok = (n > 0) & (n <= MAX_REPEAT) & (count_a <= MAX_REPEAT)
    values, owner, lo, n, count_a = values[ok], owner[ok], lo[ok], n[ok], count_a[ok]
    if n.sum() > MAX_PAIRS:  # bound the work: the most repeated values go first
        by_n = np.argsort(n, kind="stable")
        keep = np.sort(by_n[np.cumsum(n[by_n]) <= MAX_PAIRS])
        values, owner, lo, n, count_a = values[keep], owner[keep], lo[keep], n[keep], count_a[keep]
    rep = np.repeat(np.arange(n.size), n)
    within = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n)
    src = owner[rep]
    tgt = order_b[lo[rep] + within]
    weight = 1.0 / np.maximum(count_a[rep], n[rep])
    span_s = a.spans[src].astype(np.float64)
    span_t = b.spans[tgt].astype(np.float64)
    pitch = (b.anchor_bands[tgt].astype(np.float64) - a.anchor_bands[src]) / 16.0
    max_pitch_bands = BANDS_PER_OCTAVE * np.log2(max_pitch) + PITCH_TOL_BANDS
    keep_pairs = (span_t <= span_s * max_scale + SPAN_TOL_FRAMES) & (span_t >= span_s / max_scale - SPAN_TOL_FRAMES)
    keep_pairs &= np.abs(pitch) <= max_pitch_bands
    src, tgt, weight, pitch = src[keep_pairs], tgt[keep_pairs], weight[keep_pairs], pitch[keep_pairs]
    span_s, span_t = span_s[keep_pairs], span_t[keep_pairs]
    return Pairs(
        src=src.astype(np.int64),
        tgt=tgt.astype(np.int64),
        weight=weight,
        ts=a.hash_frames[src].astype(np.float64),
        tt=b.hash_frames[tgt].astype(np.float64),
        pitch_bands=pitch,
        span_s=span_s,
        span_t=span_t,
    )


def lines(p: Pairs, a: AudioFingerprint, b: AudioFingerprint, max_scale: float) -> list[Line]:
    """Alignments found by the Hough vote, strongest first (see the module docstring)."""
    if len(p) == 0:
        return []
    grid = np.arange(1.0 / max_scale, max_scale + A_STEP / 2, A_STEP)
    pair_of_vote, a_bin, b_bin = _votes(p, np.arange(len(p)), grid)
    b_min = int(b_bin.min()) if b_bin.size else 0
    keys = a_bin * (int(b_bin.max(initial=0)) - b_min + 1) + (b_bin - b_min)
    cells, cell_of_vote = np.unique(keys, return_inverse=True)
    n_b = int(b_bin.max(initial=0)) - b_min + 1
    votes = np.bincount(cell_of_vote, weights=p.weight[pair_of_vote], minlength=cells.size)
    used = np.zeros(len(p), dtype=bool)
    found: list[Line] = []
    for _ in range(MAX_LINES):
        if votes.size == 0:
            break
        best = int(np.argmax(votes))
        if votes[best] < MIN_CELL_VOTES:
            break
        scale = float(grid[cells[best] // n_b])
        offset = float((cells[best] % n_b + b_min + 0.5) * B_STEP)
        line = _fit(p, used, scale, offset, max_scale)
        taken = line.members if line is not None else pair_of_vote[cell_of_vote == best]
        used[taken] = True
        # Remove every vote of the taken pairs; the best cell goes in any case, so the loop ends.
        gone = used[pair_of_vote]
        votes -= np.bincount(cell_of_vote[gone], weights=p.weight[pair_of_vote[gone]], minlength=cells.size)
        keep = ~gone
        pair_of_vote, cell_of_vote = pair_of_vote[keep], cell_of_vote[keep]
        votes[best] = 0.0
        if line is not None:
            found.append(line)
    return found


def _votes(p: Pairs, idx: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hough votes of pairs ``idx``: (pair, index into ``grid`` of ``a``, offset bin) per vote; a pair votes
    for every ``a`` that its span ratio allows."""
    pair_parts, a_parts, b_parts = [], [], []
    for ai, scale in enumerate(grid):
        sel = idx[np.abs(scale * p.span_s[idx] - p.span_t[idx]) <= SPAN_TOL_FRAMES + 0.02 * p.span_s[idx]]
        pair_parts.append(sel)
        a_parts.append(np.full(sel.size, ai, np.int64))
        b_parts.append(np.floor((p.tt[sel] - scale * p.ts[sel]) / B_STEP).astype(np.int64))
    pair_of_vote, a_bin, b_bin = (np.concatenate(x) for x in (pair_parts, a_parts, b_parts))
    return pair_of_vote, a_bin, b_bin


def weak_lines(p: Pairs, taken: list[Line], max_scale: float) -> list[Line]:
    """Candidate lines from the pairs that ``lines`` left, too few or too repeated to be a run themselves.

    A pitch-shifted copy can keep as few as 7-16 triplets over 10 s, most of them values repeated over the
    source (a weight of 0.05-0.3 each), so no cell of ``lines`` reaches ``MIN_CELL_VOTES`` although every one
    of those pairs agrees on the offset and on the pitch. Binning the pitch too separates them from chance
    pairs, whose pitch differences spread over the whole allowed range. These lines are hypotheses only:
    ``match`` keeps one when its frame rows agree along it (``row_lines.segment``).
    """
    used = np.zeros(len(p), dtype=bool)
    for strong in taken:
        used[strong.members] = True
    free = np.nonzero(~used)[0]
    if free.size < 3:
        return []
    grid = np.arange(1.0 / max_scale, max_scale + A_STEP / 2, A_STEP)
    pair_of_vote, a_bin, b_bin = _votes(p, free, grid)
    p_bin = np.floor(p.pitch_bands[pair_of_vote] / WEAK_PITCH_BIN).astype(np.int64)
    keep = _may_reach(pair_of_vote, a_bin, b_bin, p.weight, grid.size)
    pair_of_vote, a_bin, b_bin, p_bin = pair_of_vote[keep], a_bin[keep], b_bin[keep], p_bin[keep]
    if pair_of_vote.size < 3:
        return []
    # Each vote counts in the cells whose 2 x 2 box of (offset, pitch) holds it.
    pair_of_vote = np.tile(pair_of_vote, 4)
    a_bin = np.tile(a_bin, 4)
    b_bin = np.concatenate([b_bin, b_bin - 1, b_bin, b_bin - 1])
    p_bin = np.concatenate([p_bin, p_bin, p_bin - 1, p_bin - 1])
    b_bin -= b_bin.min()
    p_bin -= p_bin.min()
    n_b, n_p = int(b_bin.max()) + 1, int(p_bin.max()) + 1
    cells, cell_of_vote = np.unique((a_bin * n_b + b_bin) * n_p + p_bin, return_inverse=True)
    votes = np.bincount(cell_of_vote, weights=p.weight[pair_of_vote], minlength=cells.size)
    # A pair votes at most once in a cell, so a cell's vote count is its number of pairs. Votes only ever
    # decrease, so only cells that hold three pairs and MIN_WEAK_VOTES now can ever make a line: the rest
    # (nearly all of them between unrelated recordings) are set aside at once, with their votes.
    n_pairs = np.bincount(cell_of_vote, minlength=cells.size)
    live = np.flatnonzero((n_pairs >= 3) & (votes >= MIN_WEAK_VOTES))  # in cell order, as argmax breaks ties
    index = np.full(cells.size, -1, np.int64)
    index[live] = np.arange(live.size)
    keep = index[cell_of_vote] >= 0
    pair_of_vote, cell_of_vote = pair_of_vote[keep], index[cell_of_vote[keep]]
    cells, votes, n_pairs = cells[live], votes[live], n_pairs[live]
    found: list[Line] = []
    while len(found) < MAX_WEAK_LINES and votes.size:
        best = int(np.argmax(votes))
        if votes[best] < MIN_WEAK_VOTES:
            break
        members = pair_of_vote[cell_of_vote == best]
        votes[best] = 0.0
        scale = float(grid[cells[best] // (n_b * n_p)])
        offset = float(np.median(p.tt[members] - scale * p.ts[members]))
        line = _fit(p, used, scale, offset, max_scale)
        if line is None:
            continue
        used[line.members] = True
        gone = used[pair_of_vote]
        votes -= np.bincount(cell_of_vote[gone], weights=p.weight[pair_of_vote[gone]], minlength=cells.size)
        n_pairs -= np.bincount(cell_of_vote[gone], minlength=cells.size)
        votes[n_pairs < 3] = 0.0
        pair_of_vote, cell_of_vote = pair_of_vote[~gone], cell_of_vote[~gone]
        found.append(line)
    return found


def _may_reach(pair_of_vote: np.ndarray, a_bin: np.ndarray, b_bin: np.ndarray, weight: np.ndarray, n_a: int) -> np.ndarray:
    """Votes that may lie in a cell ``weak_lines`` can take (3 pairs and ``MIN_WEAK_VOTES``): a cell's box of
    two offset bins, over all pitch bins, bounds it from above, and a vote counts in the boxes of its own offset
    bin and of the one before. Between unrelated recordings most votes fail both, and skipping them costs the
    (offset, pitch) vote nothing."""
    b = b_bin - b_bin.min() + 1  # from 1: the box before every vote's bin lies in its own row of ``a``
    n_b = int(b.max()) + 2
    flat = a_bin * n_b + b
    count = np.bincount(flat, minlength=n_a * n_b)
    votes = np.bincount(flat, weights=weight[pair_of_vote], minlength=n_a * n_b)
    box_count, box_votes = count + np.append(count[1:], 0), votes + np.append(votes[1:], 0.0)
    reach = (box_count >= 3) & (box_votes >= MIN_WEAK_VOTES - 1e-9)  # the bound holds up to rounding
    return reach[flat] | reach[flat - 1]


def _fit(p: Pairs, used: np.ndarray, scale: float, offset: float, max_scale: float) -> Line | None:
    """Gather the pairs near ``tt = scale * ts + offset``, agree on pitch, refit; ``None`` if too few."""
    tol = B_STEP + INLIER_TOL_FRAMES
    members = np.zeros(0, np.int64)
    pitch = 0.0
    for _ in range(3):
        resid = p.tt - (scale * p.ts + offset)
        members = np.nonzero((np.abs(resid) <= tol) & ~used)[0]
        if members.size < 3:
            return None
        pitch = float(np.median(p.pitch_bands[members]))
        members = members[np.abs(p.pitch_bands[members] - pitch) <= PITCH_TOL_BANDS]
        if members.size < 3:
            return None
        x, y, w = p.ts[members], p.tt[members], p.weight[members]
        if np.ptp(x) >= MIN_SLOPE_SPAN_FRAMES:  # the slope is measurable, else keep the grid's
            xm, ym = np.average(x, weights=w), np.average(y, weights=w)
            slope = np.sum(w * (x - xm) * (y - ym)) / max(np.sum(w * (x - xm) ** 2), 1e-9)
            scale = float(np.clip(slope, 1.0 / max_scale, max_scale))
            offset = float(ym - scale * xm)
        else:
            # Too short for a slope: the spans measure the scale instead. Their ratio of sums averages the
            # frame jitter of many triplets, where the Hough grid alone cannot tell nearby slopes apart.
            slope = np.sum(w * p.span_t[members]) / max(np.sum(w * p.span_s[members]), 1e-9)
            scale = float(np.clip(slope, 1.0 / max_scale, max_scale))
            offset = float(np.median(y - scale * x))
        tol = INLIER_TOL_FRAMES
    resid = p.tt - (scale * p.ts + offset)
    members = np.nonzero((np.abs(resid) <= tol) & ~used & (np.abs(p.pitch_bands - pitch) <= PITCH_TOL_BANDS))[0]
    if members.size < 3:
        return None
    return Line(scale=scale, offset_frames=offset, pitch_bands=pitch, members=members)
