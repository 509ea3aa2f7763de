"""Comparing two triplet fingerprints: lines from ``hough``, runs along each line, refined edges, a score.

1. ``hough.find_pairs`` and ``hough.lines`` give alignments ``tt = a * ts + b`` with their inlier pairs and
   pitch shift.
2. The inliers of a line are split into runs where the source times leave a gap longer than
   ``max_gap_s``; a run keeps one vote per source triplet and one per target triplet. Two parts are joined
   again when the gap is at most ``max_join_gap_s`` and its frame rows agree along the line
   (``min_join_row_share``): where few triplets survive a pitch or tempo change, a copy's triplets leave
   long gaps, and its weak first part alone would not make a run (the segment then started late).
3. Evidence of a run is its weighted vote count, discounted when the run is sparse compared with the
   triplets present in its span (``full_density``): a chance alignment scattered over minutes is thin.
   A run whose span holds fewer than ``min_hash_rate_per_s`` triplets per second on either side is no
   evidence at all: white or pink noise, clicks and near-silence give a few random peaks a second, and
   even an identical noise file must not match itself. Calm, sparse music is as sparse, so a low-rate
   run is still kept when the span is tonal on both sides (``tonal``: the sustain maxima continue from row
   to row in at least ``min_continued_share`` of it, which noise never does) and holds at least
   ``min_tonal_hash_rate_per_s`` triplets a second.
4. Edges are refined (``edges``) from the run's core (lone pairs at its ends left out): source peaks just
   outside it are mapped through the line (time by ``a``, band by the pitch shift) and the run grows while
   they find a target peak, then likewise on the sustain maxima, which reach a cut made inside a held note.
   Then the frame rows (loudness and spectral shape every 64 ms) place each edge where their agreement sum
   peaks, through pauses too (and through quiet passages buried under added noise: ``edges``' masked rows),
   trimming an edge that ran into the filler; the rows of the final segment that
   agree above chance (20%, or the pair's own share along the line moved by a few seconds, when higher) add
   ``row_evidence`` each to the run's evidence (an aligned copy agrees on 70-90% of its rows, a chance line
   on 3-10%), which rescues pitch-shifted copies where few triplets survived. Copies that no triplet run
   found at all, but whose rows agree along an unscaled line, come from ``row_lines`` (``row_line_evidence``
   per row above chance); so do copies whose few surviving triplets made no run but propose a weak line
   (``hough.weak_lines``: pitch-shifted copies keep 7-16 mostly repeated triplets over 10 s), held to a
   longer stretch and a margin over their shifted lines' agreement (``row_lines.WEAK_MIN_S``, ``WEAK_MARGIN``).
   Two runs of one line whose refined edges overlap or lie within ``MERGE_GAP_S`` are merged into one
   (their triplet evidence added, the rows counted once over the union), rather than the later one being
   dropped as a fringe of the earlier. A kept segment whose spans both lie inside a stronger one's, on a line
   within ``MERGE_GAP_S`` of it (a slightly different slope through the same copy), is dropped (``_inside``):
   it would list part of one copy twice.
5. Evidence saturates into [0, 1]: ``1 - exp(-evidence / evidence_scale)``; the score sums all kept runs.

How to read the score with segment durations: ``similarity_score`` measures *how much* aligned evidence
exists, ``matched_segments[i].duration_s`` *how long* each aligned stretch is, and ``score`` on a segment
its own evidence. The pipeline (``shared/matching.py``) drops segments shorter than ``min_segment_s`` and
only reports ``match`` when the score passes the threshold *and* a segment is left, so a strong but
incidental one-second overlap (a shared sample, a jingle) never makes a match by itself; to accept short
reuse, lower ``min_segment_s`` per request, and to be stricter, raise it rather than the threshold (a long
segment with a modest score is better evidence than a short one with a high score). Segments shorter than
``audio.min_segment_s`` (or 80% of the shorter input) are not produced at all.

This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from shared.kinds.audio import row_lines
from shared.kinds.audio.edges import (
    EVIDENCE_FLIPS_PITCH,
    ROW_MAX_FLIPS_PITCH,
    ROW_SHARE,
    extend_run,
    row_agreement,
    row_agreements,
)
from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.hough import Line, Pairs, find_pairs, lines, weak_lines
from shared.kinds.audio.peaks import BANDS_PER_OCTAVE, N_FFT
from shared.kinds.audio.tonal import continued_share
from shared.protocol import Confidence, Match, Segment
from shared.settings import AudioSettings, Settings

#: A run within this many frames of the offset of an earlier, overlapping run is that run's fringe.
DUPLICATE_OFFSET_FRAMES = 8.0
SHORT_INPUT_S = 2.0
#: Two runs of one line whose refined edges are at most this far apart (or overlap) are merged into one.
MERGE_GAP_S = 1.0
#: Share of frame rows that agree by chance along a wrong line (3-10% measured); only rows above it count, or
#: above the pair's own chance share, measured along the line moved by each of CHANCE_SHIFTS_S, when higher.
ROW_CHANCE = 0.2
CHANCE_SHIFTS_S = (-6.0, -3.0, -1.5, 1.5, 3.0, 6.0)
#: The rows' edge search (``edges._grow_rows``) counts a row as evidence only at this margin above the pair's
#: chance share (over the run's core), when that is higher than ``edges.ROW_SHARE``.
ROW_SHARE_MARGIN = 0.15
#: A run's edges are refined from its core: lone pairs at its ends, further than CORE_GAP_S and CORE_GAP_FACTOR
#: times the run's median gap from the next, are left out, so a chance pair on the line up to ``max_gap_s``
#: beyond the copy no longer carries an edge into the filler (a sparse run, where such gaps are common, keeps
#: its ends).
CORE_GAP_S = 1.5
CORE_GAP_FACTOR = 5.0


@dataclass(frozen=True)
class _Run:
    line: Line
    src_start: float  # frames
    src_end: float
    evidence: float
    n_aligned: int
    triplet_evidence: float = 0.0  # the part of ``evidence`` that the triplets gave, before the rows'


def saturate(evidence: float, scale: float) -> float:
    return 1.0 - math.exp(-max(evidence, 0.0) / scale)


def compare(a: AudioFingerprint, b: AudioFingerprint, settings: Settings) -> Match:
    """Compare source ``a`` with target ``b``; see the module docstring."""
    cfg = settings.audio
    warnings: list[str] = []
    shorter_s = min(a.duration_s, b.duration_s)
    if shorter_s < SHORT_INPUT_S:
        warnings.append(f"input shorter than {SHORT_INPUT_S:.0f} s ({shorter_s:.2f} s): the score is unreliable")
    for name, fp in (("source", a), ("target", b)):
        if fp.duration_s >= SHORT_INPUT_S and fp.n_hashes < cfg.min_run_evidence:
            warnings.append(f"{name} has almost no spectral peaks (silence, a pure tone or noise?)")
    frame_s = a.frame_s
    centre_s = N_FFT / 2 / a.sample_rate_hz  # a frame's time is the centre of its window
    min_segment_s = min(cfg.min_segment_s, 0.8 * shorter_s)
    kept: list[tuple[Segment, _Run]] = []
    for run in _find_runs(a, b, cfg):
        line = run.line
        src_start_s = max(run.src_start * frame_s + centre_s, 0.0)
        src_end_s = min(run.src_end * frame_s + centre_s, a.duration_s)
        tgt_start_s = (line.scale * run.src_start + line.offset_frames) * frame_s + centre_s
        tgt_end_s = (line.scale * run.src_end + line.offset_frames) * frame_s + centre_s
        segment = Segment(
            source_start_s=src_start_s,
            source_end_s=src_end_s,
            target_start_s=max(tgt_start_s, 0.0),
            target_end_s=min(tgt_end_s, b.duration_s),
            score=saturate(run.evidence, cfg.evidence_scale),
        )
        if segment.duration_s >= min_segment_s:
            kept.append((segment, run))
    kept = [(seg, run) for seg, run in kept if not any(_inside(seg, run, *other, frame_s) for other in kept)]
    kept.sort(key=lambda sr: (sr[0].target_start_s, sr[0].source_start_s))
    evidence = sum(run.evidence for _, run in kept)
    score = saturate(evidence, cfg.evidence_scale)
    confidence: Confidence = "high" if score >= 0.85 or score <= 0.15 else "medium"
    if shorter_s < SHORT_INPUT_S:
        confidence = "low"
    runs = [run for _, run in kept]
    details = {
        "offsets_s": [round(r.line.offset_frames * frame_s, 3) for r in runs],
        "time_scales": [round(r.line.scale, 4) for r in runs],
        "pitch_factors": [round(2 ** (r.line.pitch_bands / BANDS_PER_OCTAVE), 4) for r in runs],
        # The strongest segment's factors: target seconds per source second, target pitch / source pitch.
        "time_scale": round(max(runs, key=lambda r: r.evidence).line.scale, 4) if runs else 1.0,
        "pitch_factor": round(2 ** (max(runs, key=lambda r: r.evidence).line.pitch_bands / BANDS_PER_OCTAVE), 4)
        if runs
        else 1.0,
        "aligned_hashes": int(sum(r.n_aligned for r in runs)),
        "evidence": round(evidence, 2),
        "source_hashes": a.n_hashes,
        "target_hashes": b.n_hashes,
    }
    return Match(
        similarity_score=score,
        confidence=confidence,
        segments=tuple(segment for segment, _ in kept),
        warnings=tuple(warnings),
        details=details,
    )


def _find_runs(a: AudioFingerprint, b: AudioFingerprint, cfg: AudioSettings) -> list[_Run]:
    pairs = find_pairs(a, b, cfg.max_time_scale, cfg.max_pitch_factor)
    max_gap = cfg.max_gap_s / a.frame_s
    fa, fb = np.sort(a.hash_frames.astype(np.int64)), np.sort(b.hash_frames.astype(np.int64))
    runs: list[_Run] = []
    found = lines(pairs, a, b, cfg.max_time_scale)
    for line in found:
        members = _one_vote_each(pairs, line.members)
        members = members[np.argsort(pairs.ts[members], kind="stable")]
        breaks = np.nonzero(np.diff(pairs.ts[members]) > max_gap)[0] + 1
        for part in _join_parts(np.split(members, breaks), line, pairs, a, b, cfg):
            run = _score_run(part, line, pairs, a, b, fa, fb, cfg)
            if run is None:
                continue
            if runs and runs[-1].line is line and run.src_start - runs[-1].src_end <= MERGE_GAP_S / a.frame_s:
                # Two parts of one line whose refined edges meet are one copy: merge, not drop as a fringe.
                runs[-1] = _merge(runs[-1], run, a, b, cfg)
            elif not any(_same_place(run, other) for other in runs):
                runs.append(run)
    if cfg.row_line_evidence > 0:
        for line in row_lines.candidate_lines(a, b) + weak_lines(pairs, found, cfg.max_time_scale):
            run = _row_run(line, a, b, cfg)
            if run is not None and not any(_target_overlap(run, other) for other in runs):
                runs.append(run)
    return runs


def _row_run(line: Line, a: AudioFingerprint, b: AudioFingerprint, cfg: AudioSettings) -> _Run | None:
    """A run of ``line`` found by the frame rows alone (``row_lines``), or None when it is no evidence."""
    found = row_lines.segment(a, b, line)
    if found is None:
        return None
    start, end, share = found
    weak = line.members.size > 0  # proposed by a few triplets (``weak_lines``), not by the row votes
    min_s = row_lines.WEAK_MIN_S if weak else row_lines.MIN_S
    if (end - start) * a.frame_s < max(cfg.min_segment_s, min_s) or share < row_lines.MIN_SHARE:
        return None
    tonal = min(
        continued_share(a, start, end), continued_share(b, start + line.offset_frames, end + line.offset_frames)
    )
    if tonal < cfg.min_continued_share:
        return None  # noise agrees with itself row by row, but its maxima never continue
    run = _Run(line, start, end, 0.0, 0)
    shifted = _shifted_agreement(run, a, b, ROW_MAX_FLIPS_PITCH)  # the segment's own test (``row_lines.segment``)
    most = max((n / k for n, k in shifted if k), default=1.0)
    if most > row_lines.MAX_SHIFTED_SHARE or (weak and share < most + row_lines.WEAK_MARGIN):
        return None  # a steady or periodic sound (a tone, a drone) agrees with itself at other offsets too
    run = _with_rows(run, a, b, cfg, cfg.row_line_evidence)
    return run if run.evidence > 0 else None


def _shifted_agreement(
    run: _Run, a: AudioFingerprint, b: AudioFingerprint, pitch_flips: int = EVIDENCE_FLIPS_PITCH
) -> list[tuple[int, int]]:
    """``row_agreement`` of the run's span along its line moved by each of ``CHANCE_SHIFTS_S``."""
    shifts = tuple(d / a.frame_s for d in CHANCE_SHIFTS_S)
    return row_agreements(a, b, run.line, run.src_start, run.src_end, shifts, pitch_flips)


def _chance_share(run: _Run, a: AudioFingerprint, b: AudioFingerprint, pitch_flips: int = EVIDENCE_FLIPS_PITCH) -> float:
    """Share of the run's rows that agree along its line moved by the chance shifts, all pooled."""
    shifted = _shifted_agreement(run, a, b, pitch_flips)
    return sum(n for n, _ in shifted) / max(sum(k for _, k in shifted), 1)


def _with_rows(
    run: _Run, a: AudioFingerprint, b: AudioFingerprint, cfg: AudioSettings, per_row: float | None = None
) -> _Run:
    """``run`` with its evidence set to its triplets' plus its agreeing frame rows' (``per_row`` each, by default
    ``row_evidence``)."""
    evidence = run.triplet_evidence
    per_row = cfg.row_evidence if per_row is None else per_row
    if per_row > 0:
        n_agree, n_rows = row_agreement(a, b, run.line, run.src_start, run.src_end)
        # Chance agreement of this pair: the same line moved by a few seconds. A steady passage (a held chord)
        # agrees with itself a second later, so its rows prove less than changing music's.
        chance = max(ROW_CHANCE, _chance_share(run, a, b))
        evidence += per_row * max(0.0, n_agree - chance * n_rows)
    return replace(run, evidence=evidence)


def _merge(first: _Run, second: _Run, a: AudioFingerprint, b: AudioFingerprint, cfg: AudioSettings) -> _Run:
    merged = replace(
        first,
        src_start=min(first.src_start, second.src_start),
        src_end=max(first.src_end, second.src_end),
        n_aligned=first.n_aligned + second.n_aligned,
        triplet_evidence=first.triplet_evidence + second.triplet_evidence,
    )
    return _with_rows(merged, a, b, cfg)


def _join_parts(
    parts: list[np.ndarray], line: Line, p: Pairs, a: AudioFingerprint, b: AudioFingerprint, cfg: AudioSettings
) -> list[np.ndarray]:
    """Join consecutive parts of one line whose gap (at most ``max_join_gap_s``) the frame rows bridge.

    Where few triplets survive (a pitch or tempo change), a copy's triplets can leave gaps longer than
    ``max_gap_s`` along its line, and a weak first part alone would not make a run. The gap is the same copy
    when its frame rows agree along the line well above chance (``min_join_row_share``; aligned rows agree on
    46-92%, unrelated ones on 3-10%); a different insert between two reused pieces does not.
    """
    if len(parts) < 2 or cfg.max_join_gap_s <= 0:
        return parts
    joined = [parts[0]]
    for part in parts[1:]:
        prev = joined[-1]
        gap_start = float((p.ts[prev] + a.spans[p.src[prev]]).max())
        gap_end = float(p.ts[part].min())
        if (gap_end - gap_start) * a.frame_s <= cfg.max_join_gap_s:
            n_agree, n_rows = row_agreement(a, b, line, gap_start, gap_end)
            if n_rows and n_agree >= cfg.min_join_row_share * n_rows:
                joined[-1] = np.concatenate([prev, part])
                continue
        joined.append(part)
    return joined


def _core(part: np.ndarray, p: Pairs, a: AudioFingerprint, src_start: float, src_end: float) -> tuple[float, float]:
    """``[src_start, src_end]`` without lone pairs at either end: an end pair is left out while the gap to its
    neighbour exceeds ``CORE_GAP_S`` and ``CORE_GAP_FACTOR`` times the run's median gap."""
    if part.size < 3:
        return src_start, src_end
    starts = np.sort(p.ts[part])
    ends = np.sort(p.ts[part] + a.spans[p.src[part]])
    gaps = np.diff(starts)
    lone = max(CORE_GAP_S / a.frame_s, CORE_GAP_FACTOR * float(np.median(gaps)))
    first = 0
    while first < gaps.size - 1 and gaps[first] > lone:
        first += 1
    gaps = np.diff(ends)
    last = ends.size - 1
    while last > 1 and gaps[last - 1] > lone:
        last -= 1
    return float(starts[first]), float(ends[last])


def _inside(seg: Segment, run: _Run, other_seg: Segment, other: _Run, frame_s: float) -> bool:
    """Whether ``seg`` repeats part of a stronger segment: both its spans lie within ``other_seg``'s (give or take
    ``MERGE_GAP_S``) and the two lines are within ``MERGE_GAP_S`` of each other over it (a line of a slightly
    different slope through the same copy, not a second use of the source)."""
    if other is run or other.evidence <= run.evidence:
        return False
    within = (
        other_seg.source_start_s - MERGE_GAP_S <= seg.source_start_s
        and seg.source_end_s <= other_seg.source_end_s + MERGE_GAP_S
        and other_seg.target_start_s - MERGE_GAP_S <= seg.target_start_s
        and seg.target_end_s <= other_seg.target_end_s + MERGE_GAP_S
    )
    ends = np.array([run.src_start, run.src_end])
    apart_frames = np.abs((run.line.scale - other.line.scale) * ends + run.line.offset_frames - other.line.offset_frames)
    return within and float(apart_frames.max()) * frame_s <= MERGE_GAP_S


def _one_vote_each(p: Pairs, members: np.ndarray) -> np.ndarray:
    """Keep one pair per source triplet and one per target triplet (the heaviest, then the first)."""
    order = members[np.lexsort((-p.weight[members],))]
    _, first = np.unique(p.src[order], return_index=True)
    order = order[np.sort(first)]
    _, first = np.unique(p.tgt[order], return_index=True)
    return order[np.sort(first)]


def _target_overlap(run: _Run, other: _Run) -> bool:
    """Whether the two runs cover some of the same target time (a rows-only run there adds nothing)."""
    start, end = (run.line.scale * t + run.line.offset_frames for t in (run.src_start, run.src_end))
    other_start, other_end = (other.line.scale * t + other.line.offset_frames for t in (other.src_start, other.src_end))
    return start < other_end and other_start < end


def _same_place(run: _Run, other: _Run) -> bool:
    """Whether ``run`` is the fringe of ``other``: a nearby line over an overlapping source span."""
    mid = 0.5 * (run.src_start + run.src_end)
    here = run.line.scale * mid + run.line.offset_frames
    there = other.line.scale * mid + other.line.offset_frames
    return (
        abs(here - there) <= DUPLICATE_OFFSET_FRAMES
        and run.src_start <= other.src_end
        and other.src_start <= run.src_end
    )


def _score_run(
    part: np.ndarray,
    line: Line,
    p: Pairs,
    a: AudioFingerprint,
    b: AudioFingerprint,
    fa: np.ndarray,
    fb: np.ndarray,
    cfg: AudioSettings,
) -> _Run | None:
    if part.size < cfg.min_run_distinct:
        return None
    evidence = float(p.weight[part].sum())
    if evidence < cfg.min_run_evidence:
        return None
    src_start = float(p.ts[part].min())
    src_end = float((p.ts[part] + a.spans[p.src[part]]).max())
    tgt_start, tgt_end = line.scale * src_start + line.offset_frames, line.scale * src_end + line.offset_frames
    in_a = int(np.searchsorted(fa, src_end, side="right") - np.searchsorted(fa, src_start))
    in_b = int(np.searchsorted(fb, tgt_end, side="right") - np.searchsorted(fb, tgt_start))
    # Low-information spans (noise, clicks, near-silence give a few random peaks a second) are no evidence,
    # even against themselves.
    span_s = max(src_end - src_start, 1.0) * a.frame_s
    rate_per_s = min(in_a, in_b / max(line.scale, 1e-9)) / span_s
    if rate_per_s < cfg.min_hash_rate_per_s and not (
        # Calm, sparse music is low-rate too, but its notes hold from row to row where noise does not.
        rate_per_s >= cfg.min_tonal_hash_rate_per_s
        and min(continued_share(a, src_start, src_end), continued_share(b, tgt_start, tgt_end)) >= cfg.min_continued_share
    ):
        return None
    density = evidence / max(min(in_a, in_b), 1)
    evidence *= min(1.0, density / cfg.full_density)
    src_start, src_end = _core(part, p, a, src_start, src_end)
    # Rows grow an edge only where they agree more often than this pair does by chance (similar timbres).
    chance = _chance_share(_Run(line, src_start, src_end, 0.0, 0), a, b, ROW_MAX_FLIPS_PITCH)
    src_start, src_end = extend_run(a, b, line, src_start, src_end, max(ROW_SHARE, chance + ROW_SHARE_MARGIN))
    return _with_rows(_Run(line, src_start, src_end, evidence, int(part.size), evidence), a, b, cfg)
