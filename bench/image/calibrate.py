"""Calibrate the image kind's local-evidence threshold on the tuning split (seed 1), not on the report's.

Usage: ``.venv/bin/python -m bench.image.calibrate --seed 1`` after ``run.py --seed 1 --methods mediamatch``
(which caches our fingerprints). For every pair it recomputes the two pieces of evidence separately (global
Hamming bits, verified local inliers) and prints, per negative kind, the largest evidence seen, and the
inlier count that keeps the local stage's false-positive rate at 1e-4 of the negatives.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from bench.image import dataset
from bench.image.run import CACHE, _load_blobs
from shared.kinds.image import ImageFingerprint
from shared.kinds.image.scoring import best_alignment, is_low_information
from shared.kinds.image.verify import verify
from shared.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    settings = Settings().image
    pairs = dataset.build(args.seed)
    blobs = _load_blobs(CACHE / f"mediamatch_seed{args.seed}.bin")
    assert blobs is not None, "run bench.image.run --methods mediamatch first"
    fps = {k: ImageFingerprint.from_bytes(v) for k, v in blobs.items()}
    rows = []
    for p in pairs:
        a, b = fps[p.source], fps[p.target]
        bits, _ = best_alignment(a, b)
        ev = verify(a.features, b.features, settings)
        low = is_low_information(a, settings) or is_low_information(b, settings)
        rows.append((p.label, p.tag, bits, 0 if ev is None else ev.inliers, low))
    neg = [r for r in rows if r[0] == 0 and not r[4]]
    print("negatives (not low-information):", len(neg))
    for tag in sorted({r[1] for r in neg}):
        sub = [r for r in neg if r[1] == tag]
        print(f"  {tag:14s} n={len(sub):6d} min_bits={min(r[2] for r in sub):4d} "
              f"max_inliers={max(r[3] for r in sub):4d} inliers>=10: {sum(r[3] >= 10 for r in sub)}")
    for excl in ((), ("sequence",)):
        inl = np.array(sorted((r[3] for r in neg if r[1] not in excl), reverse=True))
        allowed = int(1e-4 * len(rows and inl))
        print(f"excluding {excl}: top inliers {inl[:12].tolist()}; 1e-4 FPR needs inliers > {inl[allowed]}")
        print("  hist", sorted(Counter(inl.tolist()).items())[-15:])
    pos = [r for r in rows if r[0] == 1]
    for tag in sorted({r[1] for r in pos}):
        sub = [r for r in pos if r[1] == tag]
        inl = np.array([r[3] for r in sub])
        bits = np.array([r[2] for r in sub])
        print(f"  {tag:28s} bits<=31 {np.mean(bits <= 31):.2f}  inliers p10 {np.percentile(inl, 10):5.1f} "
              f"median {np.median(inl):5.1f}  >=10 {np.mean(inl >= 10):.2f} >=14 {np.mean(inl >= 14):.2f} "
              f"either(31,12) {np.mean((bits <= 31) | (inl >= 12)):.3f}")


if __name__ == "__main__":
    main()
