"""Image ingest throughput per core, decode included (issue 6: target >= 50 images per second per core).

What is timed, per file, in one process pinned to one thread (``cv2.setNumThreads(1)``, single-threaded
BLAS): reading the bytes, their sha256 and sniffing (what ingest does once the bytes are local), Pillow
decode, the hash, the keypoints, the thumbnail, and serialising the fingerprint. Fetching is excluded (it
is network-bound, not CPU-bound). The files are the image benchmark's originals (JPEG, at most 2 MP) and
a seeded sample of their variants (JPEG, PNG, WebP; 0.25x to 4x), built by ``bench.image.dataset``.

    .venv/bin/python -m bench.catalog.ingest_image --count 600
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402

from shared.kinds.image import fingerprint_image  # noqa: E402
from shared.protocol import LocalMedia  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.sniff import SNIFF_BYTES, sniff  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "image"


def ingest_one(path: Path, settings: Settings) -> int:
    data = path.read_bytes()
    media = LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), sniff(data[:SNIFF_BYTES]) or "")
    return len(fingerprint_image(media, settings).to_bytes())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=600, help="files to ingest (originals first, then variants)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    settings = Settings()
    originals = sorted((DATA / "orig").iterdir())
    variants = sorted((DATA / f"seed{args.seed}").iterdir())
    random.Random(args.seed).shuffle(variants)
    files = (originals + variants)[: args.count]
    ingest_one(files[0], settings)  # warm imports and OpenCV
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    times_s: list[float] = []
    sizes: list[int] = []
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for path in files:
        t0 = time.perf_counter()
        sizes.append(ingest_one(path, settings))
        times_s.append(time.perf_counter() - t0)
    wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    times_s.sort()
    print(f"uptime before: {load}")
    print(f"uptime after:  {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"files: {len(files)} ({len(originals)} originals, {len(files) - len(originals)} variants)")
    print(f"wall: {wall_s:.1f} s -> {len(files) / wall_s:.1f} images/s; CPU: {cpu_s:.1f} s -> "
          f"{len(files) / cpu_s:.1f} images per CPU-second")
    print(f"per image: median {1000 * statistics.median(times_s):.1f} ms, "
          f"p95 {1000 * times_s[int(0.95 * (len(times_s) - 1))]:.1f} ms")
    print(f"fingerprint bytes: median {statistics.median(sizes):.0f}, max {max(sizes)}")


if __name__ == "__main__":
    main()
