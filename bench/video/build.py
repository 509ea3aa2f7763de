"""Build the benchmark set under ``bench/data/video`` (sources, targets, hard negatives, ``pairs.json``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sources  # noqa: E402
import variants  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "data" / "video"

if __name__ == "__main__":
    srcs, distractors, card = sources.build(ROOT / "sources")
    pairs = variants.build(ROOT, srcs, distractors, card)
    print(f"{len(srcs)} sources, {len(pairs)} pairs")
