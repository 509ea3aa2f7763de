"""Comparing two landmark fingerprints: common hashes, an offset histogram, aligned runs, a score.

1. Hashes shared by source and target are paired up (hashes repeated more than ``MAX_REPEAT`` times in
   either are stop words: tones, loops and jingles, never evidence).
2. Each pair votes for its offset ``t_target - t_source``; a pair weighs ``1 / max(count_source,
   count_target)`` of its hash, so a hash that repeats n times counts about once, however often it aligns
   (the false-positive trap of periodic content and duplicated hashes).
3. Offsets are taken greedily from the histogram (smoothed over +-1 frame, the tolerance of Wang 2003 and
   audfprint) while they carry enough votes. The pairs of one offset are split into runs where the source
   times leave a gap longer than ``MAX_GAP_S``; each run with enough evidence becomes a ``Segment``.
4. Evidence is saturated into [0, 1] with ``1 - exp(-evidence / EVIDENCE_SCALE)``; a run's evidence is its
   weighted pair count, discounted when the run is sparse compared with the hashes present in its span.

This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.landmarks import MAX_DT, N_FFT
from shared.protocol import Confidence, Match, Segment
from shared.settings import Settings

MAX_REPEAT = 40
#: At most this many hash pairs are examined (memory and time bound for hours-long inputs).
MAX_PAIRS = 4_000_000
#: Offsets are examined while they hold this much weighted evidence, at most MAX_OFFSETS of them.
MIN_OFFSET_EVIDENCE = 6.0
MAX_OFFSETS = 24
MAX_GAP_S = 4.0
#: A run within this many frames of the offset of an earlier, overlapping run is that run's fringe.
DUPLICATE_OFFSET_FRAMES = 3.0
#: A run needs this much weighted evidence and this many distinct hash values to become a segment.
MIN_RUN_EVIDENCE = 8.0
MIN_RUN_DISTINCT = 8
#: Runs whose aligned share of the hashes in their span is below this are discounted proportionally.
FULL_DENSITY = 0.10
#: Evidence giving a score of 1 - 1/e (0.63); 0.5 is reached at 0.69 * EVIDENCE_SCALE.
EVIDENCE_SCALE = 30.0
SHORT_INPUT_S = 2.0


@dataclass(frozen=True)
class _Run:
    offset_frames: float
    src_start: int
    src_end: int
    evidence: float
    n_aligned: int


def saturate(evidence: float) -> float:
    return 1.0 - math.exp(-max(evidence, 0.0) / EVIDENCE_SCALE)


def compare(a: AudioFingerprint, b: AudioFingerprint, settings: Settings) -> Match:
    """Compare source ``a`` with target ``b``; see the module docstring."""
    warnings: list[str] = []
    shorter_s = min(a.duration_s, b.duration_s)
    if shorter_s < SHORT_INPUT_S:
        warnings.append(
            f"input shorter than {SHORT_INPUT_S:.0f} s ({shorter_s:.2f} s): the score is unreliable"
        )
    for name, fp in (("source", a), ("target", b)):
        if fp.duration_s >= SHORT_INPUT_S and fp.n_hashes < MIN_RUN_EVIDENCE:
            warnings.append(f"{name} has almost no spectral landmarks (silence, a pure tone or noise?)")
    frame_s = a.frame_s
    min_segment_s = min(settings.audio.min_segment_s, 0.8 * shorter_s)
    kept: list[tuple[Segment, _Run]] = []
    for run in _find_runs(a, b):
        src_start_s = run.src_start * frame_s
        src_end_s = min(run.src_end * frame_s + N_FFT / a.sample_rate_hz, a.duration_s)
        offset_s = run.offset_frames * frame_s
        segment = Segment(
            source_start_s=src_start_s,
            source_end_s=src_end_s,
            target_start_s=max(src_start_s + offset_s, 0.0),
            target_end_s=min(src_end_s + offset_s, b.duration_s),
            score=saturate(run.evidence),
        )
        if segment.duration_s >= min_segment_s:
            kept.append((segment, run))
    kept.sort(key=lambda sr: (sr[0].target_start_s, sr[0].source_start_s))
    evidence = sum(run.evidence for _, run in kept)
    score = saturate(evidence)
    confidence: Confidence = "high" if score >= 0.85 or score <= 0.15 else "medium"
    if shorter_s < SHORT_INPUT_S:
        confidence = "low"
    details = {
        "offsets_s": [round(run.offset_frames * frame_s, 3) for _, run in kept],
        "aligned_hashes": int(sum(run.n_aligned for _, run in kept)),
        "evidence": round(evidence, 2),
        "source_hashes": a.n_hashes,
        "target_hashes": b.n_hashes,
        "time_scale": 1.0,
    }
    return Match(
        similarity_score=score,
        confidence=confidence,
        segments=tuple(segment for segment, _ in kept),
        warnings=tuple(warnings),
        details=details,
    )


def _pairs(a: AudioFingerprint, b: AudioFingerprint) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (source frame, target frame, hash, weight) with equal hashes, stop words excluded."""
    empty = np.zeros(0, np.int64)
    ua, ca = np.unique(a.hashes, return_counts=True)
    ub, cb = np.unique(b.hashes, return_counts=True)
    common, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
    ok = (ca[ia] <= MAX_REPEAT) & (cb[ib] <= MAX_REPEAT)
    common, ia, ib = common[ok], ia[ok], ib[ok]
    # Bound the work on long inputs: past MAX_PAIRS, the hashes that pair most are dropped first.
    n_pairs = ca[ia].astype(np.int64) * cb[ib]
    if n_pairs.sum() > MAX_PAIRS:
        by_pairs = np.argsort(n_pairs, kind="stable")
        keep = np.sort(by_pairs[np.cumsum(n_pairs[by_pairs]) <= MAX_PAIRS])
        common, ia, ib = common[keep], ia[keep], ib[keep]
    if common.size == 0:
        return empty, empty, empty, np.zeros(0)
    weight_of = 1.0 / np.maximum(ca[ia], cb[ib])
    # Source entries whose hash is common, and for each the range of target entries with that hash.
    sel = np.nonzero(np.isin(a.hashes, common))[0]
    h_src = a.hashes[sel]
    k = np.searchsorted(common, h_src)
    order_b = np.argsort(b.hashes, kind="stable")
    hb_sorted = b.hashes[order_b]
    lo = np.searchsorted(hb_sorted, h_src, side="left")
    n = np.searchsorted(hb_sorted, h_src, side="right") - lo
    rep = np.repeat(np.arange(sel.size), n)
    within = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n)
    tb = b.hash_frames[order_b[lo[rep] + within]].astype(np.int64)
    ta = a.hash_frames[sel[rep]].astype(np.int64)
    return ta, tb, h_src[rep].astype(np.int64), weight_of[k[rep]]


def _find_runs(a: AudioFingerprint, b: AudioFingerprint) -> list[_Run]:
    ta, tb, h, w = _pairs(a, b)
    if ta.size == 0:
        return []
    d = tb - ta
    shift = int(-d.min()) + 1
    hist = np.bincount(d + shift, weights=w)
    max_gap = max(1, round(MAX_GAP_S / a.frame_s))
    # Hash frames of each side, to measure how dense a run is against what its spans contain.
    fa, fb = np.sort(a.hash_frames.astype(np.int64)), np.sort(b.hash_frames.astype(np.int64))
    used = np.zeros(d.size, dtype=bool)
    runs: list[_Run] = []
    for _ in range(MAX_OFFSETS):
        smooth = np.convolve(hist, np.ones(3), mode="same")
        o = int(np.argmax(smooth))
        if smooth[o] < MIN_OFFSET_EVIDENCE:
            break
        near = np.nonzero((np.abs(d + shift - o) <= 1) & ~used)[0]
        used[near] = True
        hist -= np.bincount(d[near] + shift, weights=w[near], minlength=hist.size)
        hist[max(o - 1, 0) : o + 2] = 0.0  # rounding residue
        # One vote per (hash, source frame): the +-1 tolerance must not count a landmark twice.
        key = h[near] * (1 << 32) + ta[near]
        _, first = np.unique(key, return_index=True)
        near = near[first]
        near = near[np.argsort(ta[near], kind="stable")]
        breaks = np.nonzero(np.diff(ta[near]) > max_gap)[0] + 1
        for part in np.split(near, breaks):
            run = _score_run(part, ta, d, h, w, fa, fb)
            if run is not None and not any(_same_place(run, other) for other in runs):
                runs.append(run)
    return runs


def _same_place(run: _Run, other: _Run) -> bool:
    """Whether ``run`` is the jitter fringe of ``other``: a nearby offset over an overlapping source span."""
    return (
        abs(run.offset_frames - other.offset_frames) <= DUPLICATE_OFFSET_FRAMES
        and run.src_start <= other.src_end
        and other.src_start <= run.src_end
    )


def _score_run(
    part: np.ndarray,
    ta: np.ndarray,
    d: np.ndarray,
    h: np.ndarray,
    w: np.ndarray,
    fa: np.ndarray,
    fb: np.ndarray,
) -> _Run | None:
    if part.size == 0 or np.unique(h[part]).size < MIN_RUN_DISTINCT:
        return None
    evidence = float(w[part].sum())
    if evidence < MIN_RUN_EVIDENCE:
        return None
    src_start = int(ta[part].min())
    src_end = int((ta[part] + (h[part] & MAX_DT)).max())
    offset = float(np.average(d[part], weights=w[part]))
    tgt_start, tgt_end = src_start + round(offset), src_end + round(offset)
    in_span = min(
        np.searchsorted(fa, src_end, side="right") - np.searchsorted(fa, src_start),
        np.searchsorted(fb, tgt_end, side="right") - np.searchsorted(fb, tgt_start),
    )
    density = evidence / max(int(in_span), 1)
    evidence *= min(1.0, density / FULL_DENSITY)
    return _Run(offset, src_start, src_end, evidence, int(part.size))
