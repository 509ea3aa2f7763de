"""Triplet hashes that do not change under time stretch or pitch shift (after Panako: Six & Leman, ISMIR 2014).

Three peaks ``(t1, f1), (t2, f2), (t3, f3)`` with ``t1 <= t2 < t3`` (frames, log-frequency band positions)
give three fields:

- ``df12 = f2 - f1`` and ``df23 = f3 - f2``, in bands: a pitch shift translates every band position by the
  same amount, so differences stay put;
- ``ratio = (t2 - t1) / (t3 - t1)``: a tempo change multiplies every time difference by the same factor,
  so the ratio stays put (a speed change does both at once).

Each field is quantised (``DF_STEP_BANDS``, ``RATIO_LEVELS``) and the three are packed into a 16-bit value
(63 * 63 * 16 values, stored as uint16). Quantisation makes a
value that sits near a cell edge flip cells under a small distortion, so each hash also records, per field,
whether its true value lies within ``PROBE_MARGIN`` of an edge and on which side; the comparer (and a
catalog query) then also looks up the neighbouring cell (Panako's neighbour probing), only on the query
side, so the index stores one entry per triplet.

Alongside the hash, each triplet keeps what the verifier needs and the hash cannot hold: the anchor frame
``t1``, the span ``t3 - t1`` (the local time-scale factor is the ratio of spans) and the anchor's band
position ``f1`` (the local pitch factor is ``2 ** ((f1' - f1) / BANDS_PER_OCTAVE)``).

This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Triplets per anchor: pairs (j, k) among the next ``LOOKAHEAD`` peaks inside the target zone.
LOOKAHEAD = 6
MAX_PER_ANCHOR = 7
#: Span t3 - t1 in frames (16 ms): 0.1 s .. 1.0 s; t2 - t1 may be 0 (a chord) but t3 - t2 >= 1.
MIN_SPAN = 6
MAX_SPAN = 62
#: Band differences are bounded to +-MAX_DF_BANDS (1.3 octaves at 24 bands per octave).
MAX_DF_BANDS = 31
DF_STEP_BANDS = 1.0
RATIO_LEVELS = 16
#: A field whose value is further than this (in cells) from its cell centre is probed in the next cell too.
PROBE_MARGIN = 0.2
_DF_CELLS = 2 * MAX_DF_BANDS + 1


class Triplets(NamedTuple):
    hashes: np.ndarray  # uint16
    frames: np.ndarray  # uint32, anchor frame t1
    spans: np.ndarray  # uint8, t3 - t1 in frames
    anchor_bands: np.ndarray  # uint16, f1 in 1/16 band
    probes: np.ndarray  # uint8: bit 2k = field k needs a probe, bit 2k + 1 = the probe goes up


def _quantise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell, needs_probe, probe_up) of values measured in cells."""
    cell = np.floor(x + 0.5)
    frac = x - cell  # in [-0.5, 0.5)
    return cell.astype(np.int64), np.abs(frac) > PROBE_MARGIN, frac > 0


def pack(q12: np.ndarray, q23: np.ndarray, qr: np.ndarray) -> np.ndarray:
    """Pack quantised fields (band cells in +-MAX_DF_BANDS, ratio level) into a hash value."""
    return (((q12 + MAX_DF_BANDS) * _DF_CELLS + (q23 + MAX_DF_BANDS)) * RATIO_LEVELS + qr).astype(np.uint16)


def unpack(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = h.astype(np.int64)
    qr = h % RATIO_LEVELS
    rest = h // RATIO_LEVELS
    return rest // _DF_CELLS - MAX_DF_BANDS, rest % _DF_CELLS - MAX_DF_BANDS, qr


def hash_triplets(t: np.ndarray, f: np.ndarray) -> Triplets:
    """Hash peaks (time order; frames ``t``, band positions ``f``) into triplets, in anchor order."""
    n = t.size
    if n < 3:
        z = np.zeros(0, np.uint32)
        return Triplets(z.astype(np.uint16), z, z.astype(np.uint8), z.astype(np.uint16), z.astype(np.uint8))
    look = min(LOOKAHEAD, n - 1)
    j_off, k_off = np.triu_indices(look, k=1)  # candidate pairs (j < k) among the next `look` peaks
    j_off, k_off = j_off + 1, k_off + 1
    i = np.repeat(np.arange(n), j_off.size)
    j = i + np.tile(j_off, n)
    k = i + np.tile(k_off, n)
    valid = k < n
    i, j, k = i[valid], j[valid], k[valid]
    t1, t2, t3 = t[i], t[j], t[k]
    f1, f2, f3 = f[i], f[j], f[k]
    span = t3 - t1
    df12, df23 = f2 - f1, f3 - f2
    ok = (span >= MIN_SPAN) & (span <= MAX_SPAN) & (t3 > t2)
    ok &= (np.abs(df12) <= MAX_DF_BANDS - 1) & (np.abs(df23) <= MAX_DF_BANDS - 1)
    i, t1, t2, span, f1, df12, df23 = (x[ok] for x in (i, t1, t2, span, f1, df12, df23))
    # At most MAX_PER_ANCHOR triplets per anchor, the nearest ones first (they survive distortion best).
    order = np.lexsort((span, i))
    i, t1, t2, span, f1, df12, df23 = (x[order] for x in (i, t1, t2, span, f1, df12, df23))
    rank = np.arange(i.size) - np.searchsorted(i, i, side="left")
    keep = rank < MAX_PER_ANCHOR
    t1, t2, span, f1, df12, df23 = (x[keep] for x in (t1, t2, span, f1, df12, df23))
    q12, p12, u12 = _quantise(df12 / DF_STEP_BANDS)
    q23, p23, u23 = _quantise(df23 / DF_STEP_BANDS)
    # The ratio lives in [0, 1): cells are [k/L, (k+1)/L), centres at (k + 0.5)/L; no probing past the ends.
    r = (t2 - t1) / span * RATIO_LEVELS - 0.5
    qr, pr, ur = _quantise(r)
    qr = np.clip(qr, 0, RATIO_LEVELS - 1)
    pr &= ~((qr == 0) & ~ur) & ~((qr == RATIO_LEVELS - 1) & ur)
    probes = p12 | (u12 << 1) | (p23 << 2) | (u23 << 3) | (pr << 4) | (ur << 5)
    return Triplets(
        hashes=pack(q12, q23, qr),
        frames=t1.astype(np.uint32),
        spans=span.astype(np.uint8),
        anchor_bands=np.round(f1 * 16).astype(np.uint16),
        probes=probes.astype(np.uint8),
    )


def probe_variants(hashes: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All hash values to look up for each query hash: (values, index of the query hash they belong to)."""
    q12, q23, qr = unpack(hashes)
    p = probes.astype(np.int64)
    need = [(p >> 0) & 1, (p >> 2) & 1, (p >> 4) & 1]
    step = [np.where((p >> 1) & 1, 1, -1), np.where((p >> 3) & 1, 1, -1), np.where((p >> 5) & 1, 1, -1)]
    values, owners = [], []
    idx = np.arange(hashes.size)
    for mask in range(8):
        sel = np.ones(hashes.size, dtype=bool)
        fields = [q12.copy(), q23.copy(), qr.copy()]
        for b in range(3):
            if mask >> b & 1:
                sel &= need[b] == 1
                fields[b] = fields[b] + step[b]
        values.append(pack(fields[0][sel], fields[1][sel], fields[2][sel]))
        owners.append(idx[sel])
    return np.concatenate(values), np.concatenate(owners)
