"""The tuning side of the image catalog benchmark: choose index settings here, never on ``run.py``'s queries.

Mirror image of ``run.py``: the catalog holds the 145 originals, the **seed-0** variants and synthetic
distractors (derived from those) up to ``--items``; the queries are the **seed-1** variants, whose
originals are in the catalog. ``run.py`` (seed-1 variants in the catalog, seed-0 queries) stays the
evaluation side. Per family: Recall@10 of the pairwise matcher's matches (or ten better-scoring matches,
as ``run.py`` counts it), whether the original was among the proposed candidates at all, and the
search's latency and compares. ``MEDIAMATCH_INDEX_IMAGE_*`` variables try other index settings.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.tuning --items 20000 --out /tmp/tuning.json
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss  # noqa: E402

from bench.catalog.image.distractors import Distractors  # noqa: E402
from bench.catalog.image.real import load as load_real  # noqa: E402
from bench.catalog.image.run import SEED_CATALOG, TOP_K, CountingKind, pct, record  # noqa: E402
from bench.image import dataset, transforms  # noqa: E402
from shared.index.image import ImageIndex  # noqa: E402
from shared.index.replica import candidate_tiers, rank_key, verify_tiers  # noqa: E402
from shared.kinds.image import KIND, ImageFingerprint  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import ItemRecord  # noqa: E402


@dataclasses.dataclass
class TuningCatalog:
    """The tuning side's catalog: the originals, the seed-0 variants and distractors, indexed."""

    real: dict[str, ImageFingerprint]
    names: list[str]
    distractors: Distractors
    index: ImageIndex

    def fingerprint_of(self, key: int) -> ImageFingerprint:
        n = len(self.names)
        return self.real[self.names[key]] if key < n else self.distractors.make(key - n)

    def name_of(self, key: int) -> str:
        return self.names[key] if key < len(self.names) else f"distractor-{key - len(self.names)}"


def tuning_catalog(items: int, settings: Settings) -> TuningCatalog:
    real = {k: ImageFingerprint.from_bytes(v) for k, v in load_real().items()}
    names = sorted(k for k in real if k.startswith("orig/") or k.startswith("seed0/"))
    distractors = Distractors([real[n] for n in names], SEED_CATALOG)
    index = ImageIndex(settings)
    index.add_many([(i, real[n]) for i, n in enumerate(names)])
    for start in range(0, items - len(names), 20_000):
        index.add_many([(len(names) + i, distractors.make(i)) for i in range(start, min(start + 20_000, items - len(names)))])
    index.compact_now()
    return TuningCatalog(real, names, distractors, index)


def script_start(default_items: int) -> tuple[argparse.Namespace, Settings]:
    """A catalog benchmark script's start: ``--items`` and ``--out``, one thread, settings from the
    environment."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=default_items)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    return args, Settings.from_env()


def tuning_run() -> tuple[argparse.Namespace, Settings, TuningCatalog]:
    """A tuning-side script's start (``script_start``), the catalog built."""
    args, settings = script_start(20_000)
    return args, settings, tuning_catalog(args.items, settings)


def main() -> None:
    args, settings, catalog = tuning_run()
    threshold = settings.image.match_threshold
    real, names, index = catalog.real, catalog.names, catalog.index
    key_of = {n: i for i, n in enumerate(names)}
    fingerprint_of, name_of = catalog.fingerprint_of, catalog.name_of

    compared: list[int] = []

    def load(keys: list[int]) -> list[tuple[ItemRecord, ImageFingerprint]]:
        compared.extend(keys)
        return [(record(k, name_of(k)), fingerprint_of(k)) for k in keys]

    families: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    latency_ms: dict[str, list[float]] = {"index": [], "verify": []}
    compares: list[int] = []
    full_compares: list[int] = []
    counting = CountingKind()
    missed: list[dict[str, Any]] = []
    settled: list[bool] = []
    same_top = 0
    for p in (p for p in dataset.build(1) if p.label == 1):
        query, truth = real[p.target], key_of[p.source]
        t0 = time.perf_counter()
        tiers = candidate_tiers(index, query, max(TOP_K * 20, settings.index.min_candidates))
        t1 = time.perf_counter()
        compared.clear()
        counting.full_compares = 0
        hits = verify_tiers(counting, query, tiers, load, settings, TOP_K, threshold)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        # The local stage runs inside the search only when the exact head does not settle the top 10.
        latency_ms["index"].append(1000 * (t1 - t0 + tiers.lazy_seconds))
        latency_ms["verify"].append(1000 * (t2 - t1 - tiers.lazy_seconds))
        settled.append(tiers.settled)
        compares.append(len(compared))
        full_compares.append(counting.full_compares)
        if tiers.settled:  # exactness of a settled search: the top 10 of every candidate, in one tier (untimed)
            every = verify_tiers(counting, query, [[k for tier in tiers.all() for k in tier]], load, settings, TOP_K,  # type: ignore[arg-type]
                                 threshold)
            same_top += [rank_key(h.match.similarity_score, h.item.external_id) for h in every] == [
                rank_key(h.match.similarity_score, h.item.external_id) for h in hits]
        pairwise = KIND.compare(query, real[p.source], settings).similarity_score
        matched = [h.item.pk for h in hits if h.match.similarity_score >= threshold]
        mine = rank_key(pairwise, p.source)
        crowded = len(matched) == TOP_K and all(rank_key(h.match.similarity_score, h.item.external_id) < mine
                                                for h in hits)
        proposed = truth in {k for tier in tiers.all() for k in tier}
        family = families[transforms.family(p.tag)]
        family["queries"] += 1
        if pairwise >= threshold:
            family["pairwise"] += 1
            family["found"] += truth in matched or crowded
            family["proposed"] += proposed
            if not (truth in matched or crowded):
                missed.append({"query": p.target, "proposed": proposed, "compared": len(compared)})
    found = sum(f["found"] for f in families.values())
    pairwise_n = sum(f["pairwise"] for f in families.values())
    result = {
        "items": len(index), "settings": dataclasses.asdict(settings.index), "loadavg": os.getloadavg(),
        "latency_ms": {k: {"p50": round(pct(v, 50), 2), "p99": round(pct(v, 99), 2)} for k, v in latency_ms.items()},
        "compares": {"p50": pct(compares, 50), "p99": pct(compares, 99)},
        "full_compares": {"p50": pct(full_compares, 50), "p99": pct(full_compares, 99)},
        "settled_by_exact_head": sum(settled), "settled_with_the_top10_of_every_candidate": same_top,
        "found_of_pairwise": {"found": found, "pairwise": pairwise_n, "fraction": round(found / max(pairwise_n, 1), 4)},
        "per_family": {k: dict(v) for k, v in sorted(families.items())}, "missed": missed,
    }
    args.out.write_text(json.dumps(result, indent=1))
    for k, v in sorted(families.items()):
        print(f"{k:15s} {v['found']:4d} of {v['pairwise']:4d} pairwise matches ({v['found'] / max(v['pairwise'], 1):.3f})")
    print(json.dumps({k: result[k] for k in ("latency_ms", "compares", "full_compares", "settled_by_exact_head",
                                       "settled_with_the_top10_of_every_candidate", "found_of_pairwise")}))


if __name__ == "__main__":
    main()
