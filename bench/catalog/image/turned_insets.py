"""How near a picture turned inside its frame hashes to its original, as it is and turned back (``turn.py``).

Most of the catalog's missed combinations are ``combo_screenshot_rotate`` variants: a photo turned 1-5
degrees (``bench/image/transforms.py``: turned inside its own frame, black corners) and pasted into a page.
The inset finder finds the frame, but the hash of a turned picture is far from its original's, and the
word stage misses it too (``REPORT.md``); the fingerprint also stores the frame turned back. This
measures, per such variant, the best Hamming distance from any of its insets to the original's 8 hashes:

* ``current``: the inset as it is (the fingerprint's entry before ``turn.py``);
* ``estimated``: the inset turned back by the turn its black corners show (``turn.turn_deg``; the entry
  the fingerprint now adds);
* ``oracle``: turned back by the best of 89 angles (-5.5 to 5.5 degrees, 0.125 apart), chosen by looking
  at the original: a ceiling for any angle estimate, not a method.

The global stage and the catalog's hash stage find a pair within 31 bits.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.turned_insets --seed 1
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from bench.catalog.image.real import media
from bench.image import dataset
from shared.kinds.image import fingerprint_image
from shared.kinds.image.decode import decode_luma
from shared.kinds.image.hashing import hamming_bits, hash_luma
from shared.kinds.image.inset import find_insets
from shared.kinds.image.turn import turn_deg, turned_back
from shared.settings import Settings

ORACLE_DEG = np.arange(-5.5, 5.501, 0.125)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    settings = Settings()
    pairs = [p for p in dataset.build(args.seed) if p.tag == "combo_screenshot_rotate"]
    rows = []
    for p in pairs:
        original = fingerprint_image(media(p.source, settings), settings).hashes
        decoded = decode_luma(media(p.target, settings), settings.image)
        left, top, right, bottom = hash_luma(decoded.luma).trim
        content = decoded.luma[top:bottom, left:right]

        def bits(plane: np.ndarray, original: tuple[bytes, ...] = original) -> int:
            code = hash_luma(plane).hashes[0]
            return min(hamming_bits(h, code) for h in original)

        best = {"current": 256, "estimated": 256, "oracle": 256}
        for x0, y0, x1, y1 in find_insets(content):
            region = content[y0:y1, x0:x1]
            best["current"] = min(best["current"], bits(region))
            angle = turn_deg(region)
            if angle is not None:
                best["estimated"] = min(best["estimated"], bits(turned_back(region, angle)))
            best["oracle"] = min([best["oracle"]] + [bits(turned_back(region, float(a))) for a in ORACLE_DEG])
        rows.append(best)
    summary = {
        "seed": args.seed, "variants": len(rows),
        "within_bits": {str(t): {k: sum(r[k] <= t for r in rows) for k in ("current", "estimated", "oracle")}
                        for t in (16, 24, 31, 40)},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
