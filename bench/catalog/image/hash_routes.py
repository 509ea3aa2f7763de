"""What each global route of the image index's exact stage costs at catalog scale (issue 6), hashes only.

The exact stage (``shared/index/image_hashes.py``) answers every route of the compare's global score: the
whole images, a picture inside the query against any item hash, and the pictures inside items against the
query's 8 hashes. This builds the hash stage alone for ``--items``
items: the catalog's real fingerprints (``real.py``) and synthetic distractors made as ``distractors.py``
makes their hashes and insets (a crossover of two real fingerprints' bits, 5% flipped; vectorised here, so
the bits differ from ``run.py``'s distractors but not their statistics). Then it times each route for
the seed-0 variants (``run.py``'s recall queries), one thread: the whole images alone, the exact head's
routes (``HEAD_ROUTES``), its completion (``COMPLETION_ROUTES``, searched only to settle a search),
every route at once, and every route within ``NEAR_BITS`` (what a search looks at first).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.hash_routes --items 1000000 --out ...
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench.catalog.image.distractors import HASH_FLIP  # noqa: E402
from bench.catalog.image.real import load as load_real  # noqa: E402
from bench.catalog.image.run import pct, uptime  # noqa: E402
from bench.catalog.image.tuning import script_start  # noqa: E402
from bench.image import dataset  # noqa: E402
from shared.index.image import COMPLETION_ROUTES, HEAD_ROUTES, NEAR_BITS  # noqa: E402
from shared.index.image_hashes import ROUTES, HashStage, as_u64  # noqa: E402
from shared.kinds.image.fingerprint import MAX_STORED_INSETS, ImageFingerprint  # noqa: E402
from shared.kinds.image.scoring import is_low_information  # noqa: E402
from shared.settings import Settings  # noqa: E402


def arrays(fps: list[ImageFingerprint], settings: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 8, 32) hashes, (n, I, 32) inset hashes and (n, I) which insets count, as the index keeps them."""
    codes = np.stack([np.frombuffer(b"".join(fp.hashes), np.uint8).reshape(8, 32) for fp in fps])
    insets = np.zeros((len(fps), MAX_STORED_INSETS, 32), np.uint8)
    valid = np.zeros((len(fps), MAX_STORED_INSETS), bool)
    for n, fp in enumerate(fps):
        for i, inset in enumerate(fp.insets):
            insets[n, i] = np.frombuffer(inset.hash, np.uint8)
            valid[n, i] = not is_low_information(inset, settings.image)
    return codes, insets, valid


def distractors(pool: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, rng: np.random.Generator) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """``n`` distractors' hashes and insets: per item, a bitwise crossover of two pool items A and B (one mask
    for the 8 hashes; the dihedral transposes are ignored here), 5% of the bits flipped; A's insets'
    validity, each inset hash a crossover of A's and B's hash 0."""
    codes, insets, valid = pool
    a, b = rng.integers(0, len(codes), n), rng.integers(0, len(codes), n)
    bits = np.unpackbits(codes, axis=-1)  # (p, 8, 256)
    mask = rng.random((n, 1, 256)) < 0.5
    out = np.where(mask, bits[a], bits[b]) ^ (rng.random((n, 8, 256)) < HASH_FLIP)
    ibits = np.unpackbits(insets, axis=-1)  # (p, I, 256)
    imask = rng.random((n, MAX_STORED_INSETS, 256)) < 0.5
    iout = np.where(imask, ibits[a], bits[b][:, :1]) ^ (rng.random((n, MAX_STORED_INSETS, 256)) < HASH_FLIP)
    return np.packbits(out, axis=-1), np.packbits(iout, axis=-1), valid[a].copy()


def main() -> None:
    args, settings = script_start(1_000_000)
    real = {k: ImageFingerprint.from_bytes(v) for k, v in load_real().items()}
    names = sorted(k for k in real if k.startswith("orig/") or k.startswith("seed1/"))
    pool = arrays([real[n] for n in names], settings)
    parts = [pool]
    rng = np.random.default_rng(20261127)
    t0 = time.perf_counter()
    left = args.items - len(names)
    while left > 0:
        parts.append(distractors(pool, min(left, 50_000), rng))
        left -= len(parts[-1][0])
    codes, insets, valid = (np.concatenate([p[i] for p in parts]) for i in range(3))
    n = len(codes)
    alive = np.ones(n, bool)
    stage = HashStage(settings.index.image_hash_radius_bits)
    for start in range(0, n, 50_000):
        s = np.arange(start, min(start + 50_000, n))
        stage.add_many(s, codes[s], alive, insets[s], valid[s])
    stage.postings.merge(alive)
    codes64 = as_u64(codes)
    build_s = time.perf_counter() - t0
    print(f"built {n} items in {build_s:.0f} s; {stage.postings.nbytes / n:.0f} B of postings an item", flush=True)

    queries = [real[p.target] for p in dataset.build(0) if p.label == 1]
    insets64 = insets.view(np.uint64).reshape(n, MAX_STORED_INSETS, 4)
    routes = {"whole": ("whole",), "head": HEAD_ROUTES, "completion": COMPLETION_ROUTES, "every_route": ROUTES,
              "every_route_near": ROUTES}
    radius = {"every_route_near": NEAR_BITS}
    ms: dict[str, list[float]] = {label: [] for label in routes}
    found: dict[str, int] = dict.fromkeys(ms, 0)
    u0 = uptime()
    for q in queries:
        qcodes = np.frombuffer(b"".join(q.hashes), np.uint8).reshape(8, 32)
        _, q_insets, q_valid = arrays([q], settings)
        own = q_insets[0][q_valid[0]]
        for label, chosen in routes.items():
            t0 = time.perf_counter()
            found[label] += len(stage.search(qcodes, own, codes64, insets64, alive, chosen, radius.get(label))[0])
            ms[label].append(1000 * (time.perf_counter() - t0))
    result = {
        "items": n, "build_s": round(build_s, 1), "postings_bytes_per_item": round(stage.postings.nbytes / n, 1),
        "queries": len(queries), "queries_with_insets": sum(bool(fp.insets) for fp in queries),
        "uptime_before": u0, "uptime_after": uptime(),
        "ms": {k: {"p50": round(pct(v, 50), 2), "p90": round(pct(v, 90), 2), "p99": round(pct(v, 99), 2),
                   "mean": round(float(np.mean(v)), 2)} for k, v in ms.items()},
        "found": found,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
