"""Calibrate the photometric block check (``shared/kinds/image/photometric.py``) on the tuning split (seed 1).

Usage: ``.venv/bin/python -m bench.image.calibrate_blocks --seed 1`` after ``run.py --seed 1 --methods
mediamatch`` (which caches our fingerprints). For the pairs the global hash leaves undecided (> 31 bits) and
the local stage fits (>= 6 inliers), it recomputes the fraction of agreeing blocks and prints: the same-scene
negatives that would still match, and the positives lost, for several refusal cuts; and the pairs with 6-9
inliers that the confirmation rule (``confirm_*`` settings) would turn into matches.
"""

from __future__ import annotations

import argparse
import dataclasses

from bench.image import dataset
from bench.image.run import CACHE, _load_blobs
from shared.kinds.image import ImageFingerprint
from shared.kinds.image.photometric import block_agreement
from shared.kinds.image.scoring import best_alignment, is_low_information
from shared.kinds.image.verify import verify
from shared.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    settings = Settings().image
    low_inliers = dataclasses.replace(settings, local_min_inliers=6)
    pairs = dataset.build(args.seed)
    blobs = _load_blobs(CACHE / f"mediamatch_seed{args.seed}.bin")
    assert blobs is not None, "run bench.image.run --methods mediamatch first"
    fps = {k: ImageFingerprint.from_bytes(v) for k, v in blobs.items()}
    rows = []  # (label, tag, inliers, fraction, blocks, target)
    for p in pairs:
        a, b = fps[p.source], fps[p.target]
        if is_low_information(a, settings) or is_low_information(b, settings):
            continue
        if best_alignment(a, b)[0] <= 31:
            continue
        ev = verify(a.features, b.features, low_inliers)
        if ev is None:
            continue
        size_a, size_b = (a.features.width, a.features.height), (b.features.width, b.features.height)
        ag = block_agreement(a.thumb, size_a, b.thumb, size_b, ev.matrix, ev.mirror, settings.block_agreement_ncc)
        rows.append((p.label, p.tag, ev.inliers, ag.fraction, ag.blocks, p.target.split("/")[-1]))
    decided = [r for r in rows if r[2] >= settings.local_inliers_at_threshold]
    pos = [r for r in decided if r[0] == 1]
    neg = sorted((r for r in decided if r[0] == 0), key=lambda r: -r[3])
    print(f"local stage decides: {len(pos)} positives, {len(neg)} negatives (all same-scene)")
    print("  highest negatives:", [(r[1], r[5], round(r[3], 2)) for r in neg[:6]])
    for cut in (0.55, 0.60, 0.65, 0.70):
        kept = sum(r[3] >= cut for r in neg)
        lost = [r for r in pos if r[3] < cut]
        print(f"  refuse below {cut:.2f}: negatives still matching {kept}, positives lost {len(lost)}")
    few = [r for r in rows if r[2] < settings.local_inliers_at_threshold]
    for label in (1, 0):
        sub = [r for r in few if r[0] == label]
        confirmed = [
            r for r in sub
            if r[4] >= settings.confirm_min_blocks and r[3] >= settings.confirm_block_agreement
        ]
        print(f"{'positives' if label else 'negatives'} with 6-9 inliers: {len(sub)}, confirmed {len(confirmed)}:",
              [(r[1], r[2], round(r[3], 2), r[4]) for r in confirmed][:10])


if __name__ == "__main__":
    main()
