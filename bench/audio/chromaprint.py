"""The Chromaprint peer: ``fpcalc -raw`` fingerprints and the usual offset search over them.

Chromaprint (acoustid/chromaprint, Debian ``libchromaprint-tools``) gives one 32-bit item every
4096 / 3 samples at 11025 Hz (0.1238 s). Two raw fingerprints are compared the standard way: at every
relative offset, count the aligned items whose ``popcount(a xor b) <= MAX_BIT_ERRORS``; the best offset wins.
Its matched items are split where they leave gaps longer than ``MAX_GAP_ITEMS``; the densest cluster is the
segment (start and end on both sides). The decision is ``count >= threshold``, with the threshold calibrated
on the tuning split (see ``run.py``). Nothing here is mediamatch code.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ITEM_S = 4096 / 3 / 11025
MAX_BIT_ERRORS = 2
MAX_GAP_ITEMS = 16


@dataclass(frozen=True)
class CpResult:
    count: int
    source_start_s: float
    source_end_s: float
    target_start_s: float
    target_end_s: float


def fpcalc(path: Path, cache: Path | None = None) -> np.ndarray:
    """Raw fingerprint of the whole file (``-length 0``), cached as JSON when ``cache`` is given."""
    if cache is not None and cache.exists():
        return np.array(json.loads(cache.read_text()), dtype=np.uint32)
    out = subprocess.run(["fpcalc", "-raw", "-json", "-length", "0", str(path)], capture_output=True, text=True)
    items = json.loads(out.stdout).get("fingerprint", []) if out.stdout.strip() else []
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(items))
    return np.array(items, dtype=np.uint32)


def compare(a: np.ndarray, b: np.ndarray) -> CpResult:
    """Best-offset comparison of raw fingerprints ``a`` (source) and ``b`` (target)."""
    if a.size == 0 or b.size == 0:
        return CpResult(0, 0.0, 0.0, 0.0, 0.0)
    hits_i, hits_j = [], []
    for start in range(0, a.size, 512):  # chunked: memory stays small on long inputs
        block = np.bitwise_count(a[start : start + 512, None] ^ b[None, :]) <= MAX_BIT_ERRORS
        i, j = np.nonzero(block)
        hits_i.append(i + start)
        hits_j.append(j)
    i, j = np.concatenate(hits_i), np.concatenate(hits_j)
    if i.size == 0:
        return CpResult(0, 0.0, 0.0, 0.0, 0.0)
    d = j - i
    counts = np.bincount(d + a.size)
    best = int(np.argmax(counts)) - a.size
    at = np.sort(i[d == best])
    clusters = np.split(at, np.nonzero(np.diff(at) > MAX_GAP_ITEMS)[0] + 1)
    main = max(clusters, key=len)
    s0, s1 = int(main[0]), int(main[-1]) + 1
    return CpResult(int(counts.max()), s0 * ITEM_S, s1 * ITEM_S, (s0 + best) * ITEM_S, (s1 + best) * ITEM_S)
