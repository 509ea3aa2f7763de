"""What a replica snapshot saves at a restart: rebuilding an image replica from the change log against
resuming it from its snapshot, on a real store (a SQLite file), in one run.

The catalog: the image benchmark's real fingerprints (``image/real.py``) and synthetic distractors derived
from them (``image/distractors.py``) up to ``--items``, stored through the store's own calls (a fingerprint
row and an item row each, as an ingest writes them). Then, one thread, nothing else running:

1. **rebuild**: a new replica, with no snapshot to start from, replays the whole log (``CatalogIndex.refresh``);
2. **write**: the same replica writes its snapshot (``snapshot_now``); its size;
3. **resume**: a new replica resumes from it (``refresh`` reads the snapshot, then an empty log tail);
4. **same answers**: ``--queries`` searches (the seed-0 variants, whose originals are in the catalog, and
   new uploads) give identical hits on the rebuilt and the resumed replica.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.snapshot_restart --items 100000 --out bench/catalog/results_snapshot_restart_100k.json

``--store PATH`` keeps the SQLite store there (9.5 GB at 10^6 items), and a later run with the same path
reuses it instead of storing the catalog again.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

os.environ.setdefault("OMP_NUM_THREADS", "1")

from bench.catalog.image.distractors import Distractors  # noqa: E402
from bench.catalog.image.real import load as load_real  # noqa: E402
from bench.catalog.image.run import SEED_BACKLOG, SEED_CATALOG, rss_gib, uptime  # noqa: E402
from shared.index import make_index  # noqa: E402
from shared.index.replica import CatalogIndex, snapshot_policy  # noqa: E402
from shared.kinds import fingerprint_version, get_kind  # noqa: E402
from shared.kinds.image import ImageFingerprint  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import Store  # noqa: E402
from shared.store.catalogs import StoredFingerprint  # noqa: E402
from shared.store.tables import catalogs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--store", type=Path, help="keep (or reuse) the SQLite store at this path")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mm-snapshot-bench-"))
    try:
        run(args, work, args.store or work / "store.sqlite3")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, store_path: Path) -> None:
    settings = Settings(data_dir=work)
    kind, version = get_kind("image"), fingerprint_version("image")
    res: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "uptime_before": uptime(), "cpus": os.cpu_count()}
    real = {k: ImageFingerprint.from_bytes(v) for k, v in load_real().items()}
    names = sorted(k for k in real if k.startswith("orig/") or k.startswith("seed1/"))
    distractors = Distractors([real[n] for n in names], SEED_CATALOG)

    reuse = store_path.exists()
    store = Store.from_url(f"sqlite:///{store_path}")
    if reuse:
        with store.engine.connect() as conn:
            (catalog_id,) = conn.execute(sa.select(catalogs.c.id).where(catalogs.c.name == "bench")).one()
        cat = store.catalogs.get(catalog_id)
        n_items = sum(store.catalogs.stats(cat.id)["items"]["image"].values())
        assert n_items == args.items, f"the store at {store_path} holds {n_items} items"
        res["store"] = {"items": n_items, "reused": str(store_path), "sqlite_bytes": store_path.stat().st_size}
    else:
        cat = store.catalogs.create(None, "bench", ["image"], {})
        t0 = time.perf_counter()
        for i in range(args.items):
            fp = real[names[i]] if i < len(names) else distractors.make(i - len(names))
            data = fp.to_bytes()
            sha = hashlib.sha256(data + i.to_bytes(8, "big")).hexdigest()
            store.catalogs.put_fingerprint(StoredFingerprint(sha, "image", version, data, len(data), "image/jpeg"))
            store.catalogs.upsert_item(cat.id, names[i] if i < len(names) else f"distractor-{i}", "image", sha, None)
            if i % 20_000 == 0:
                print(f"  stored {i} items, {time.perf_counter() - t0:.0f} s", flush=True)
        res["store"] = {"items": args.items, "seconds": round(time.perf_counter() - t0, 1),
                        "sqlite_bytes": store_path.stat().st_size}
    print(json.dumps(res["store"]), flush=True)

    def replica(**index: object) -> CatalogIndex:
        s = dataclasses.replace(settings, index=dataclasses.replace(settings.index, **index))
        return CatalogIndex(cat.id, kind, version, lambda: make_index("image", s), None, snapshot_policy(s, "image"))

    rss0 = rss_gib()
    t0 = time.perf_counter()
    rebuilt = replica(snapshot_min_changes=2**62)  # no snapshot yet, and none written by the refresh
    rebuilt.refresh(store)
    rebuild_s = time.perf_counter() - t0
    assert rebuilt.restored_event_id is None
    t0 = time.perf_counter()
    assert rebuilt.snapshot_now(store)
    write_s = time.perf_counter() - t0
    (path,) = (work / "snapshots").iterdir()
    t0 = time.perf_counter()
    resumed = replica()
    resumed.refresh(store)
    resume_s = time.perf_counter() - t0
    assert resumed.restored_event_id == rebuilt.last_event_id
    res["restart"] = {
        "items_indexed": len(resumed.index), "rebuild_from_log_s": round(rebuild_s, 3),
        "snapshot_write_s": round(write_s, 3), "snapshot_bytes": path.stat().st_size,
        "resume_from_snapshot_s": round(resume_s, 3), "rebuild_over_resume": round(rebuild_s / resume_s, 1),
        "rss_gib_before": round(rss0, 2), "rss_gib_after": round(rss_gib(), 2),
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    print(json.dumps(res["restart"]), flush=True)

    queries = [real[n] for n in sorted(real) if n.startswith("seed0/")][: args.queries // 2]
    uploads = Distractors([real[n] for n in names], SEED_BACKLOG)
    queries += [uploads.make(i) for i in range(args.queries - len(queries))]
    same = 0
    for q in queries:
        a = [(h.item.external_id, h.match.similarity_score) for h in rebuilt.search(q, settings, 10, store)]
        b = [(h.item.external_id, h.match.similarity_score) for h in resumed.search(q, settings, 10, store)]
        same += a == b
    res["same_hits"] = {"queries": len(queries), "identical": same}
    res["uptime_after"] = uptime()
    print(json.dumps(res["same_hits"]), flush=True)
    args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
