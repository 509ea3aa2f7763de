"""Temporal alignment of two time-sampled sequences into matching segments.

Shared by the kinds that have a time axis (video now, audio later). The input is a sparse set of frame
pairs that look alike (``FrameMatches``: source index, target index, similarity in [0, 1]) plus the sample
times of both sequences; the output is a list of ``Run``: contiguous stretches where the target replays the
source at one constant time offset.

The method is Hough voting on the offset, the first of the aligners compared in the VCSL benchmark
(alipay/VCSL, ``vcsl/vta.py``; He et al., "A Large-scale Comprehensive Dataset and Copy-overlap Aware
Evaluation Protocol for Segment-level Video Copy Detection", CVPR 2022):

1. every matching pair (i, j) votes for the offset ``tb[j] - ta[i]``, binned at the sampling step;
2. a vote is weighted by its similarity divided by how many partners its frames have, so frames that match
   everything (a static shot, a recurring logo) add little evidence and a static video cannot build a run;
3. the strongest offset is taken, its pairs are chained along the diagonal, small gaps are bridged, short
   chains are dropped, and the box each accepted run spans is removed from the pool before the next vote,
   which allows several segments (reused clips, reordered clips).

``hamming_matches`` builds the match set for binary hashes: a dense matrix product of ±1 vectors (BLAS)
finds candidates, optionally on the leading bytes only, and a popcount gives their exact distances.

This module imports only numpy and ``shared.protocol``; it knows nothing about video or audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

try:  # optional: without it BLAS keeps its default thread count
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    threadpool_limits = None

from shared.protocol import Segment


@dataclass(frozen=True)
class FrameMatches:
    """Sparse pairs of similar samples; ``*_counts`` are partner counts before any top-k pruning."""

    source_index: np.ndarray  # int64, shape (K,)
    target_index: np.ndarray  # int64, shape (K,)
    similarity: np.ndarray  # float32 in [0, 1], shape (K,)
    source_counts: np.ndarray  # int64, shape (N,): partners of each source sample
    target_counts: np.ndarray  # int64, shape (M,)

    def __len__(self) -> int:
        return int(self.source_index.size)


@dataclass(frozen=True)
class Run:
    """One aligned stretch.

    ``votes`` sums ``similarity / partners`` over its pairs (a frame matching k frames votes 1/k: the number of
    distinct moments); ``evidence`` sums ``similarity / sqrt(partners)``, a softer count for scoring, since
    neighbouring samples of one shot legitimately look alike.
    """

    source_start_s: float
    source_end_s: float
    target_start_s: float
    target_end_s: float
    offset_s: float
    score: float
    aligned: int
    votes: float
    evidence: float

    def to_segment(self) -> Segment:
        return Segment(
            self.source_start_s, self.source_end_s, self.target_start_s, self.target_end_s, self.score
        )


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run BLAS on one thread. The products here are thin (64 or 256 columns) and memory-bound; on a busy
    2-core machine OpenBLAS's own threads fight the worker processes: two 1-hour fingerprints aligned in
    0.26 s on one thread and 0.9-1.5 s on two (``bench/video/REPORT.md``). Workers parallelise by process."""
    with threadpool_limits(limits=1, user_api="blas") if threadpool_limits is not None else nullcontext():
        yield


def _signed(bits: np.ndarray) -> np.ndarray:
    """Packed uint8 hashes (N, B) -> float32 (N, 8B) of ±1, the form in which a dot product counts agreement."""
    unpacked = np.unpackbits(np.ascontiguousarray(bits, dtype=np.uint8), axis=1)
    return unpacked.astype(np.float32) * 2.0 - 1.0


def hamming_matches(
    source_bits: np.ndarray,
    target_bits: np.ndarray,
    *,
    max_distance_bits: int,
    top_k: int = 16,
    source_valid: np.ndarray | None = None,
    target_valid: np.ndarray | None = None,
    invert_mask: np.ndarray | None = None,
    chunk_rows: int = 256,
    distinct_margin_bits: int | None = None,
    prefilter_bytes: int = 0,
    prefilter_max_distance_bits: int = 0,
) -> list[FrameMatches]:
    """Pairs with Hamming distance <= ``max_distance_bits`` between packed hashes (rows of uint8).

    Returns one ``FrameMatches`` for the target as given and, when ``invert_mask`` (a packed hash) is set,
    a second one for the target XOR that mask (e.g. a mirrored video under a flip-equivariant hash).

    Two stages. The dense stage is a matrix product of ±1 vectors (``d = (bits - a·b) / 2``), chunked over
    source rows, so BLAS does the work; with E/O the bits outside/inside the mask, ``dE + |dO|`` bounds both
    orientations at once, so mirroring costs no extra product. With ``prefilter_bytes`` it runs on the
    leading bytes of each hash only (a hash that puts its most robust bits first), keeping pairs within
    ``prefilter_max_distance_bits`` there: four times fewer multiplications for 8 of 32 bytes. The exact
    stage then counts the full distance of those candidates with a popcount of the packed XOR.

    Pairs where either side is not ``valid`` are never reported. Each source row keeps at most ``top_k``
    partners (the most similar), so a static input cannot blow up memory; the counts are taken before.

    A sample's partner count is how many samples of the other side it matches. With ``distinct_margin_bits``
    only partners within that margin of the sample's *best* match are counted (a ratio test in the spirit of
    Lowe's): a surveillance shot whose frames all lie 40-60 bits apart still has one partner per sample when
    its re-encode is 2 bits away, while a still picture matches everything equally well and keeps many.
    Source counts are exact; target counts are taken over the pairs kept after the top-k pruning.
    Similarity is ``1 - d / (bits / 2)`` clipped to [0, 1]: 1 for identical, 0 at chance level.
    """
    source_bits = np.ascontiguousarray(source_bits, dtype=np.uint8)
    target_bits = np.ascontiguousarray(target_bits, dtype=np.uint8)
    n_bytes = source_bits.shape[1]
    n_bits = n_bytes * 8
    lead = prefilter_bytes if 0 < prefilter_bytes < n_bytes else n_bytes
    stage_max = prefilter_max_distance_bits if lead < n_bytes else max_distance_bits
    a = _signed(source_bits[:, :lead])
    b = _signed(target_bits[:, :lead])
    if source_valid is not None:
        a[~np.asarray(source_valid, bool)] = 0.0  # a zero row has dot 0 -> distance bits/2, never a match
    if target_valid is not None:
        b[~np.asarray(target_valid, bool)] = 0.0
    mask = None if invert_mask is None else np.asarray(invert_mask, np.uint8)
    if mask is None:
        parts = [(a, b)]
    else:
        inside = np.unpackbits(mask[:lead]).astype(bool)
        parts = [(a[:, ~inside], b[:, ~inside]), (a[:, inside], b[:, inside])]
    min_dot = 8 * lead - 2 * stage_max  # d <= T  <=>  a·b >= bits - 2T
    n, m = a.shape[0], b.shape[0]
    orientations = 1 if mask is None else 2
    found: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(orientations)]
    counts = [[np.zeros(n, np.int64), np.zeros(m, np.int64)] for _ in range(orientations)]
    with _one_blas_thread():
        _scan(
            parts,
            source_bits,
            target_bits,
            mask,
            min_dot,
            max_distance_bits,
            distinct_margin_bits,
            top_k,
            chunk_rows,
            found,
            counts,
        )

    out = []
    for o in range(orientations):
        if found[o]:
            rows = np.concatenate([f[0] for f in found[o]]).astype(np.int64)
            cols = np.concatenate([f[1] for f in found[o]]).astype(np.int64)
            dot = np.concatenate([f[2] for f in found[o]])
        else:
            rows = cols = np.zeros(0, np.int64)
            dot = np.zeros(0, np.float32)
        if distinct_margin_bits is not None and cols.size:
            col_best = np.full(m, -np.inf, np.float32)
            np.maximum.at(col_best, cols, dot)
            near = dot >= col_best[cols] - 2 * distinct_margin_bits
            counts[o][1] = np.bincount(cols[near], minlength=m).astype(np.int64)
        # a·b = bits - 2d, so 1 - d/(bits/2) = a·b / bits
        sim = np.clip(dot / float(n_bits), 0.0, 1.0).astype(np.float32)
        out.append(FrameMatches(rows, cols, sim, counts[o][0], counts[o][1]))
    return out


def _scan(
    parts: list[tuple[np.ndarray, np.ndarray]],
    source_bits: np.ndarray,
    target_bits: np.ndarray,
    mask: np.ndarray | None,
    min_dot: float,
    max_distance_bits: int,
    distinct_margin_bits: int | None,
    top_k: int,
    chunk_rows: int,
    found: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    counts: list[list[np.ndarray]],
) -> None:
    """The two stages of ``hamming_matches`` over chunks of source rows; appends to ``found`` and ``counts``."""
    n_bits = source_bits.shape[1] * 8
    n, m = parts[0][0].shape[0], parts[0][1].shape[0]
    orientations = 1 if mask is None else 2
    for r0 in range(0, n, chunk_rows):
        dots = [pa[r0 : r0 + chunk_rows] @ pb.T for pa, pb in parts]
        rows_in_chunk = dots[0].shape[0]
        either = dots[0] if mask is None else np.abs(dots[1]) + dots[0]
        chunk_rows_idx, chunk_cols = np.divmod(np.flatnonzero(either >= min_dot), m)
        if chunk_rows_idx.size == 0:
            continue
        xor = source_bits[chunk_rows_idx + r0] ^ target_bits[chunk_cols]
        for o in range(orientations):
            d = np.bitwise_count(xor if o == 0 else xor ^ mask).sum(axis=1, dtype=np.int64)
            keep = d <= max_distance_bits
            rows, cols = chunk_rows_idx[keep], chunk_cols[keep]
            dot = (n_bits - 2 * d[keep]).astype(np.float32)
            if rows.size == 0:
                continue
            if distinct_margin_bits is None:
                counts[o][0][r0 : r0 + rows_in_chunk] += np.bincount(rows, minlength=rows_in_chunk)
                counts[o][1] += np.bincount(cols, minlength=m)
            else:
                best = np.full(rows_in_chunk, -np.inf, np.float32)
                np.maximum.at(best, rows, dot)
                near = dot >= best[rows] - 2 * distinct_margin_bits
                counts[o][0][r0 : r0 + rows_in_chunk] += np.bincount(rows[near], minlength=rows_in_chunk)
            rows, cols, dot = _top_k_per_row(rows, cols, dot, top_k)
            found[o].append((rows + r0, cols, dot))


def _top_k_per_row(
    rows: np.ndarray, cols: np.ndarray, score: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``k`` highest scores of each row (rows arrive sorted, as ``np.nonzero`` returns them)."""
    per_row = np.bincount(rows)
    if per_row.max() <= k:
        return rows, cols, score
    order = np.lexsort((-score, rows))
    rows, cols, score = rows[order], cols[order], score[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(rows.size) - starts) < k
    return rows[keep], cols[keep], score[keep]


def align_runs(
    matches: FrameMatches,
    source_times_s: np.ndarray,
    target_times_s: np.ndarray,
    *,
    step_s: float,
    min_segment_s: float,
    max_gap_s: float,
    min_votes: float = 1.5,
    max_runs: int = 16,
    source_ignorable: np.ndarray | None = None,
) -> list[Run]:
    """Hough-vote on the time offset and extract the runs along the strongest diagonals.

    ``step_s`` is the sampling step (the coarser one when the two differ): offsets are binned at it and run
    ends are the last aligned sample plus one step. Consecutive aligned samples further apart than
    ``max_gap_s`` end a run; samples marked ``source_ignorable`` (black or blank frames, silence) do not count
    towards a gap, so a long fade inside a clip does not split it. Runs shorter than ``min_segment_s`` or
    with fewer than ``min_votes`` are dropped. Runs are returned in source order.
    """
    if len(matches) == 0:
        return []
    ta = np.asarray(source_times_s, np.float64)
    tb = np.asarray(target_times_s, np.float64)
    i, j, sim = matches.source_index, matches.target_index, matches.similarity.astype(np.float64)
    offset = tb[j] - ta[i]
    partners = np.maximum(matches.source_counts[i], matches.target_counts[j]).clip(min=1)
    weight = sim / partners
    soft_weight = sim / np.sqrt(partners)
    sharp_weight = weight * sim**8
    bins = np.rint(offset / step_s).astype(np.int64)
    bins -= bins.min()
    n_bins = int(bins.max()) + 1
    # Gaps are measured in samples that count: prefix sums of the non-ignorable source samples.
    counted = np.ones(ta.size, bool) if source_ignorable is None else ~np.asarray(source_ignorable, bool)
    counted_before = np.concatenate([[0], np.cumsum(counted)])
    alive = np.ones(i.size, bool)
    runs: list[Run] = []
    for _ in range(4 * max_runs):
        if len(runs) >= max_runs or not alive.any():
            break
        hist = np.bincount(bins[alive], weights=weight[alive], minlength=n_bins)
        votes = np.convolve(hist, np.ones(3), mode="same")  # sampling phases spread one offset over 2 bins
        # Among the offsets with enough votes, take the one whose pairs are closest: neighbouring samples of
        # a slow shot also match one step off the true diagonal, nearly as often but less closely.
        sharp = np.bincount(bins[alive], weights=sharp_weight[alive], minlength=n_bins)
        sharp_votes = np.where(votes >= min_votes, np.convolve(sharp, np.ones(3), mode="same"), -1.0)
        peak = int(np.argmax(sharp_votes))
        if sharp_votes[peak] < 0:
            break
        near = np.arange(max(0, peak - 1), min(n_bins, peak + 2))
        peak = int(near[np.argmax(sharp[near])])
        window = alive & (bins == peak)
        if not window.any():
            window = alive & (np.abs(bins - peak) <= 1)
        center = float(np.average(offset[window], weights=weight[window] + 1e-12))
        sel = np.flatnonzero(alive & (np.abs(offset - center) <= 0.6 * step_s))
        alive[sel] = False  # whatever happens, this diagonal has been consumed
        alive[window] = False
        # One pair per source sample: the one closest to the diagonal, then the most similar.
        order = np.lexsort((-sim[sel], np.abs(offset[sel] - center), i[sel]))
        sel = sel[order]
        sel = sel[np.concatenate([[True], i[sel][1:] != i[sel][:-1]])]
        for piece in _split_on_gaps(sel, i, ta, counted_before, step_s, max_gap_s):
            src = i[piece]
            tgt = j[piece]
            run = Run(
                source_start_s=float(ta[src[0]]),
                source_end_s=float(ta[src[-1]] + step_s),
                target_start_s=float(tb[tgt.min()]),
                target_end_s=float(tb[tgt.max()] + step_s),
                offset_s=center,
                score=float(sim[piece].mean()),
                aligned=int(piece.size),
                votes=float(weight[piece].sum()),
                evidence=float(soft_weight[piece].sum()),
            )
            if run.source_end_s - run.source_start_s < min_segment_s - 1e-6 or run.votes < min_votes:
                continue
            runs.append(run)
            # Suppress the box this run spans, so neighbouring offsets (slow motion, near-identical frames)
            # cannot report the same overlap again.
            in_box = (
                (ta[i] >= run.source_start_s - 1e-6)
                & (ta[i] < run.source_end_s - 1e-6)
                & (tb[j] >= run.target_start_s - 1e-6)
                & (tb[j] < run.target_end_s - 1e-6)
            )
            alive &= ~in_box
    runs = _drop_shadows(runs)
    runs.sort(key=lambda r: (r.source_start_s, r.target_start_s))
    return runs


def _drop_shadows(runs: list[Run]) -> list[Run]:
    """Drop a run that mostly repeats a stronger one (at least half of it, on both axes): slow footage also
    matches a step or two off the true diagonal, and such a parallel run is the same overlap, not a reuse."""
    kept: list[Run] = []
    for run in sorted(runs, key=lambda r: -r.votes):
        src_len = max(1e-9, run.source_end_s - run.source_start_s)
        tgt_len = max(1e-9, run.target_end_s - run.target_start_s)
        if not any(
            min(run.source_end_s, k.source_end_s) - max(run.source_start_s, k.source_start_s) >= 0.5 * src_len
            and min(run.target_end_s, k.target_end_s) - max(run.target_start_s, k.target_start_s)
            >= 0.5 * tgt_len
            for k in kept
        ):
            kept.append(run)
    return kept


def _split_on_gaps(
    sel: np.ndarray,
    i: np.ndarray,
    ta: np.ndarray,
    counted_before: np.ndarray,
    step_s: float,
    max_gap_s: float,
) -> list[np.ndarray]:
    """Cut a chain of pairs (sorted by source sample) where too many counted samples lie between links."""
    if sel.size == 0:
        return []
    src = i[sel]
    between = counted_before[src[1:]] - counted_before[src[:-1] + 1]  # counted samples strictly between
    gap_s = between * step_s
    cuts = np.flatnonzero(gap_s > max_gap_s + 1e-6) + 1
    return [piece for piece in np.split(sel, cuts) if piece.size]
