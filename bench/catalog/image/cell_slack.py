"""Probe: how many postings the word stage scans, and where it ranks the original, per cell slack.

The word stage (``shared/index/image_words.py``) looks a query descriptor up in its 2 nearest vocabulary
cells per half (4 words). ``image_query_cell_slack_bits`` probes a half's second cell only when it is
within that many bits of the nearest. On the tuning side (``tuning.py``: seed-0 variants and distractors
in the catalog, seed-1 variants as queries), for each slack: the postings scanned per query (the word
scan's cost, which grows with the catalog) and whether the original is among the word stage's first 8 and
64 candidates, per transform family. Settings are switched on one built index.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.cell_slack --items 20000 --out /tmp/slack.json
"""

from __future__ import annotations

import collections
import json
import time

import numpy as np

from bench.catalog.image.tuning import tuning_run
from bench.image import dataset, transforms

SLACKS = (64, 3, 2, 1, 0)


def main() -> None:
    args, _, catalog = tuning_run()
    index, real = catalog.index, catalog.real
    key_of = {n: i for i, n in enumerate(catalog.names)}
    stage = index.words
    queries = [p for p in dataset.build(1) if p.label == 1]
    result: dict[str, object] = {"items": len(index), "queries": len(queries)}
    for slack in SLACKS:
        stage.slack_bits = slack
        families: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        scanned, seconds = [], []
        for p in queries:
            query, truth = real[p.target], index._slot_of[key_of[p.source]]
            f = query.features
            desc = np.concatenate([f.descriptors(), f.descriptors(mirror=True)])
            words = stage.query_words(desc)
            scanned.append(int(stage._counts[words[words >= 0]].sum()))
            t0 = time.perf_counter()
            slots, _ = stage.search(f, index._alive[: index._used], 64)
            seconds.append(time.perf_counter() - t0)
            rank = np.flatnonzero(slots == truth)
            fam = families[transforms.family(p.tag)]
            fam["queries"] += 1
            fam["top8"] += bool(len(rank) and rank[0] < 8)
            fam["top64"] += bool(len(rank))
        row = {
            "postings_scanned_mean": round(float(np.mean(scanned))),
            "word_search_ms_p50": round(1000 * float(np.median(seconds)), 2),
            "top8": sum(f["top8"] for f in families.values()),
            "top64": sum(f["top64"] for f in families.values()),
            "per_family": {k: dict(v) for k, v in sorted(families.items())},
        }
        result[f"slack_{slack}"] = row
        print(slack, {k: row[k] for k in ("postings_scanned_mean", "word_search_ms_p50", "top8", "top64")}, flush=True)
        for k, v in sorted(families.items()):
            print(f"   {k:15s} top8 {v['top8']:4d} top64 {v['top64']:4d} of {v['queries']}")
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
