"""How long the replica's store load takes: ``shared.index.replica.load_items`` of K candidates (item rows
and fingerprints in one query, then parsed) from a SQLite catalog of real image fingerprints.

    .venv/bin/python -m bench.catalog.image.store_load --items 3000 --candidates 30
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.catalog.image.real import load as load_real
from shared.index.replica import load_items
from shared.kinds import fingerprint_version, get_kind
from shared.store import Store, StoredFingerprint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    real = load_real()
    names = sorted(real)[: args.items]
    version = fingerprint_version("image")
    kind = get_kind("image")
    with tempfile.TemporaryDirectory() as d:
        store = Store.from_url(f"sqlite:///{Path(d) / 'bench.sqlite3'}")
        cat = store.catalogs.create(None, "bench", ["image"], {})
        pks = []
        for n in names:
            sha = hashlib.sha256(n.encode()).hexdigest()
            store.catalogs.put_fingerprint(StoredFingerprint(sha, "image", version, real[n], 1, "image/jpeg"))
            pks.append(store.catalogs.upsert_item(cat.id, n, "image", sha, None).pk)
        rng = random.Random(1)
        times_ms = []
        for _ in range(args.repeats):
            sample = rng.sample(pks, args.candidates)
            t0 = time.perf_counter()
            got = load_items(store, kind, version, sample)
            times_ms.append(1000 * (time.perf_counter() - t0))
            assert len(got) == args.candidates
        store.engine.dispose()
    print(f"SQLite, {len(names)} items, {args.candidates} candidates: load p50 {np.percentile(times_ms, 50):.2f} ms, "
          f"p99 {np.percentile(times_ms, 99):.2f} ms")


if __name__ == "__main__":
    main()
