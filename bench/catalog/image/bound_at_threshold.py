"""Probe (not shipped): could a search that returns only matches skip the compare of candidates that cannot match?

A ``min_score`` option (hits below it not returned) would let catalog search bound every candidate against
the match threshold from the first one on, instead of against the K-th hit's score once K hits are in hand
(``shared.index.replica.verify_tiers``). That only pays if the image kind's bound
(``scoring.compare_or_bound``) falls below the threshold for unrelated pairs. This counts, on the image
benchmark's negative pairs, how many are bounded (not fully compared) at a floor, and checks that no pair
so bounded scores at or above it. Needs the fingerprints cached by
``python -m bench.image.run --seed S --methods mediamatch --no-timing``.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.bound_at_threshold --seed 0 --pairs 3000
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from bench.image import dataset
from bench.image.run import CACHE, _load_blobs
from shared.kinds.image import ImageFingerprint
from shared.kinds.image.scoring import compare_fingerprints, compare_or_bound, inliers_to_reach
from shared.kinds.image.verify import Neighbours, inlier_bound
from shared.protocol import Match
from shared.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=3000)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    settings = Settings().image
    blobs = _load_blobs(CACHE / f"mediamatch_seed{args.seed}.bin")
    if blobs is None:
        raise SystemExit("run bench.image.run for this seed first (it caches the fingerprints)")
    fps = {k: ImageFingerprint.from_bytes(v) for k, v in blobs.items()}
    negatives = [p for p in dataset.build(args.seed) if p.label == 0][: args.pairs]
    out: dict[str, object] = {"seed": args.seed, "negatives": len(negatives)}
    for floor in (0.5, settings.match_threshold):
        bounded = wrong = 0
        for p in negatives:
            a, b = fps[p.source], fps[p.target]
            if not isinstance(compare_or_bound(a, b, settings, floor), Match):
                bounded += 1
                wrong += compare_fingerprints(a, b, settings).similarity_score >= floor
        out[f"floor_{floor}"] = {"bounded": bounded, "bounded_but_reaching_floor": wrong,
                                 "confirmed_inliers_to_reach": inliers_to_reach(floor, settings)}
    most = [inlier_bound(fps[p.source].features, fps[p.target].features,
                         Neighbours(fps[p.source].features, fps[p.target].features), settings) for p in negatives]
    out["inlier_bound_percentiles_10_50_90"] = [float(v) for v in np.percentile(most, [10, 50, 90])]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
