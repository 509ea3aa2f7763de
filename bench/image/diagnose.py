"""Show the evidence behind our score for chosen positives: which stage decided, and why misses miss.

Usage: ``.venv/bin/python -m bench.image.diagnose --seed 1 --tags watermark,screenshot [--all]`` after
``run.py --seed 1 --methods mediamatch`` (which caches our fingerprints). For each positive pair of the
given transforms (only those under the threshold unless ``--all``) it prints the global Hamming distance,
the local fit (inliers, ambiguous, scale) and its block agreement, the whole-frame agreement, and the score.
A tuning aid for the tuning split; it decides nothing.
"""

from __future__ import annotations

import argparse

from bench.image import dataset
from bench.image.run import CACHE, _load_blobs
from shared.kinds.image import ImageFingerprint
from shared.kinds.image.scoring import compare_fingerprints
from shared.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tags", default="watermark,screenshot")
    ap.add_argument("--all", action="store_true")
    args = ap.parse_args()
    settings = Settings().image
    tags = set(args.tags.split(","))
    blobs = _load_blobs(CACHE / f"mediamatch_seed{args.seed}.bin")
    assert blobs is not None, "run bench.image.run --methods mediamatch first"
    for p in dataset.build(args.seed):
        if p.tag not in tags:
            continue
        a, b = ImageFingerprint.from_bytes(blobs[p.source]), ImageFingerprint.from_bytes(blobs[p.target])
        m = compare_fingerprints(a, b, settings)
        if m.similarity_score >= settings.match_threshold and not args.all:
            continue
        ex, d = m.details["explanation"], m.details
        print(f"{p.label} {p.tag:26s} {p.target.split('/')[-1][:40]:40s} score {m.similarity_score:.3f} "
              f"bits {d['hamming_bits']:3d} inl {ex.get('inliers')} amb {ex.get('ambiguous')} "
              f"blocks {ex.get('block_agreement')} frame {d['frame_block_agreement']} "
              f"kp {d['source']['keypoints']}/{d['target']['keypoints']}")


if __name__ == "__main__":
    main()
