"""Score bounds in catalog search, measured: the same queries searched with and without them, interleaved.

On the tuning side (``tuning.py``'s catalog: the 145 originals, the seed-0 variants and distractors; the
seed-1 variants as queries), each query's candidate tiers are searched twice, in alternating order: by the
image kind as it is (``compare_or_bound``: candidates that cannot reach the top 10 are not fully compared)
and by the same kind without bounds (every loaded candidate fully compared). Reports the verify time of
each (ms a query, p50 / p90 / p99), the candidates loaded and fully compared, and whether the two top 10
are the same, better (every rank at least as high) or worse.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.bounds --items 20000 --out /tmp/bounds.json
"""

from __future__ import annotations

import collections
import json
import os
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


from bench.catalog.image.run import TOP_K, CountingKind, pct, record, uptime  # noqa: E402
from bench.catalog.image.tuning import tuning_run  # noqa: E402
from bench.image import dataset, transforms  # noqa: E402
from shared.index.replica import candidate_tiers, rank_key, verify_tiers  # noqa: E402
from shared.kinds.image import ImageFingerprint  # noqa: E402
from shared.store import ItemRecord  # noqa: E402


def main() -> None:
    args, settings, catalog = tuning_run()
    threshold = settings.image.match_threshold
    real, index, name_of, fingerprint_of = catalog.real, catalog.index, catalog.name_of, catalog.fingerprint_of

    queries = [p for p in dataset.build(1) if p.label == 1]
    # Candidates' fingerprints are made before timing, so both searches time the compares alone.
    ms: dict[str, list[float]] = {"bounded": [], "unbounded": []}
    full: dict[str, list[int]] = {"bounded": [], "unbounded": []}
    loads: dict[str, list[int]] = {"bounded": [], "unbounded": []}
    outcome: collections.Counter[str] = collections.Counter()
    per_family: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: {"bounded": [], "unbounded": []})
    u0 = uptime()
    for n, p in enumerate(queries):
        query = real[p.target]
        tiers = candidate_tiers(index, query, max(TOP_K * 20, settings.index.min_candidates))
        held = {k: (record(k, name_of(k)), fingerprint_of(k)) for tier in tiers.all() for k in tier}

        loaded: list[int] = []

        def load(keys: list[int], held: dict[int, tuple[ItemRecord, ImageFingerprint]] = held,
                 loaded: list[int] = loaded) -> list[tuple[ItemRecord, ImageFingerprint]]:
            loaded.extend(keys)
            return [held[k] for k in keys]

        found: dict[str, Any] = {}
        kinds = {"bounded": CountingKind(), "unbounded": CountingKind(bounded=False)}
        for label in (("bounded", "unbounded") if n % 2 else ("unbounded", "bounded")):
            loaded.clear()
            t0 = time.perf_counter()
            found[label] = verify_tiers(kinds[label], query, tiers, load, settings, TOP_K, threshold)  # type: ignore[arg-type]
            elapsed = 1000 * (time.perf_counter() - t0)
            ms[label].append(elapsed)
            per_family[transforms.family(p.tag)][label].append(elapsed)
            full[label].append(kinds[label].full_compares)
            loads[label].append(len(loaded))
        a = [rank_key(h.match.similarity_score, h.item.external_id) for h in found["bounded"]]
        b = [rank_key(h.match.similarity_score, h.item.external_id) for h in found["unbounded"]]
        if a == b:
            outcome["same"] += 1
        elif len(a) >= len(b) and all(x <= y for x, y in zip(a, b, strict=False)):
            outcome["better"] += 1
        else:
            outcome["worse"] += 1
    result = {
        "items": len(index), "queries": len(queries), "threshold": threshold, "uptime_before": u0,
        "uptime_after": uptime(), "cpus": os.cpu_count(),
        "verify_ms": {k: {q: round(pct(v, q), 2) for q in (50, 90, 99)} for k, v in ms.items()},
        "full_compares": {k: {q: pct(v, q) for q in (50, 90, 99)} for k, v in full.items()},
        "loaded": {k: {q: pct(v, q) for q in (50, 90, 99)} for k, v in loads.items()},
        "top10": dict(outcome),
        "verify_ms_p50_per_family": {
            f: {k: round(pct(v, 50), 2) for k, v in d.items()} for f, d in sorted(per_family.items())},
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
