"""Refined segment edges: grow an aligned run peak by peak (the "denser check near the edges").

A run's first and last matching triplets sit a little inside the true overlap, because only triplets whose
three peaks all survived can match. Single peaks are denser evidence: a source peak ``(t, f)`` maps through
the run's line to ``(scale * t + offset, f + pitch)`` and is confirmed when a target peak lies within
``TIME_TOL_FRAMES`` and ``BAND_TOL`` of it (a chance hit has a probability of about 1% at 8 peaks/s). The
run grows outwards, onset by onset, while no more than ``MAX_MISSES`` onsets in a row fail, within ``REACH_S``.
Then the same walk continues on the sustain maxima (``peaks``: two spectral maxima every 64 ms, with no
onset test), which reach back to a cut made in the middle of a held note, where no onset peak exists; it
stops after ``SUSTAIN_MAX_MISSES + 1`` missed rows in a row. This is the coarse-to-fine idea of audalign (a
coarse fingerprint pass, then a finer local check).

This module imports only numpy; it knows nothing of PyAV, Flask or Celery.
"""

from __future__ import annotations

import numpy as np

from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.hough import Line
from shared.kinds.audio.peaks import SUSTAIN_EVERY, SUSTAIN_PER_FRAME

TIME_TOL_FRAMES = 2.5
BAND_TOL = 1.0
MAX_MISSES = 2
REACH_S = 3.0
SUSTAIN_MAX_MISSES = 1
SUSTAIN_BAND_TOL = 1.0


def _confirmed(a: AudioFingerprint, b: AudioFingerprint, line: Line, idx: np.ndarray) -> np.ndarray:
    """Whether each source peak ``idx`` has a target peak where the line says it should be."""
    t = line.scale * a.peak_frames[idx].astype(np.float64) + line.offset_frames
    f = a.peak_bands[idx].astype(np.float64) / 16.0 + line.pitch_bands
    tb = b.peak_frames.astype(np.float64)
    lo = np.searchsorted(tb, t - TIME_TOL_FRAMES, side="left")
    hi = np.searchsorted(tb, t + TIME_TOL_FRAMES, side="right")
    fb = b.peak_bands.astype(np.float64) / 16.0
    out = np.zeros(idx.size, dtype=bool)
    for n, (start, stop) in enumerate(zip(lo, hi, strict=True)):
        out[n] = bool(np.any(np.abs(fb[start:stop] - f[n]) <= BAND_TOL))
    return out


def _walk(confirmed: np.ndarray) -> int:
    """Index of the last confirmed peak before ``MAX_MISSES`` misses in a row (-1 if none)."""
    last, misses = -1, 0
    for n, ok in enumerate(confirmed):
        if ok:
            last, misses = n, 0
        else:
            misses += 1
            if misses > MAX_MISSES:
                break
    return last


def extend_run(a: AudioFingerprint, b: AudioFingerprint, line: Line, src_start: float, src_end: float) -> tuple[float, float]:
    """Grow ``[src_start, src_end]`` (source frames) outwards along ``line`` while peaks keep confirming it."""
    reach = REACH_S / a.frame_s
    frames = a.peak_frames.astype(np.float64)
    before = np.nonzero((frames < src_start) & (frames >= src_start - reach))[0][::-1]  # nearest first
    after = np.nonzero((frames > src_end) & (frames <= src_end + reach))[0]
    if before.size:
        src_start = _grow(a, b, line, before, src_start)
    if after.size:
        src_end = _grow(a, b, line, after, src_end)
    return _grow_sustain(a, b, line, src_start, -1), _grow_sustain(a, b, line, src_end, +1)


def _grow_sustain(a: AudioFingerprint, b: AudioFingerprint, line: Line, edge: float, step: int) -> float:
    """Walk the sustain maxima from ``edge`` (source frames) by 64 ms rows, in direction ``step``.

    A row is confirmed when one of its source maxima, moved by the pitch shift, is within ``SUSTAIN_BAND_TOL`` of a
    target maximum at the mapped row; rows without source maxima (silence) neither confirm nor miss.
    """
    sa, sb = a.sustain.reshape(-1, SUSTAIN_PER_FRAME), b.sustain.reshape(-1, SUSTAIN_PER_FRAME)
    if sa.size == 0 or sb.size == 0:
        return edge
    row = int(round(edge / SUSTAIN_EVERY))
    last, misses = edge, 0
    for k in range(1, int(REACH_S / a.frame_s / SUSTAIN_EVERY) + 1):
        r = row + step * k
        if not 0 <= r < sa.shape[0]:
            break
        mapped = int(round((line.scale * r * SUSTAIN_EVERY + line.offset_frames) / SUSTAIN_EVERY))
        if not 0 <= mapped < sb.shape[0]:
            break
        src = sa[r][sa[r] > 0].astype(np.float64) - 1.0 + line.pitch_bands
        if src.size == 0:
            continue
        tgt = sb[mapped][sb[mapped] > 0].astype(np.float64) - 1.0
        if tgt.size and np.any(np.abs(src[:, None] - tgt[None, :]) <= SUSTAIN_BAND_TOL):
            last, misses = float(r * SUSTAIN_EVERY), 0
        else:
            misses += 1
            if misses > SUSTAIN_MAX_MISSES:
                break
    return last


def _grow(a: AudioFingerprint, b: AudioFingerprint, line: Line, idx: np.ndarray, edge: float) -> float:
    """Walk the peaks ``idx`` (nearest to the edge first) by onset: peaks of one frame (a chord, the
    partials of a note) are one step, confirmed when any of them is."""
    frames = a.peak_frames[idx]
    ok = _confirmed(a, b, line, idx)
    steps = np.nonzero(np.diff(frames.astype(np.int64)) != 0)[0] + 1
    groups = np.split(np.arange(idx.size), steps)
    k = _walk(np.array([bool(ok[g].any()) for g in groups]))
    return float(frames[groups[k][0]]) if k >= 0 else edge
