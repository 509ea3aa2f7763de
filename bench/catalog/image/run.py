"""The image catalog benchmark (issue 6): a 10^6-item catalog, top-10 search, recall, memory, re-scan,
and brute force in the same run.

Catalog: the image benchmark's 145 originals and 2,958 seed-1 variants (real fingerprints, decoded once
by ``real.py``), plus synthetic distractors up to ``--items`` (``distractors.py``, derived from real
fingerprints). Backlog: the 2,958 seed-0 variants (each has its original in the catalog) and synthetic
new uploads (``Distractors`` with another seed: no counterpart in the catalog) up to ``--backlog``.

Timed per query (fingerprinting excluded, as the issue asks; one process, one thread):
``index``: ``ImageIndex.candidate_tiers``; ``load``: the compared candidates' fingerprints (real ones from
memory, distractors regenerated, standing in for the store's row fetch); ``verify``: the kind's full
``compare`` of the candidates, tier by tier, and the top-10 ranking (``shared.index.replica.verify_tiers``,
what the service runs). ``candidates`` counts the candidates loaded; ``full_compares`` those fully compared
(the others were skipped by their score bound: ``verify_tiers``).

Brute force, same run: (1) the exact hash scan (``alignment_bits`` over all 10^6 items' codes) for
``--exact-queries`` queries: the index must return exactly the same items within the radius; (2) the full
pairwise ``compare`` of ``--brute-queries`` queries against every real catalog item and
``--brute-distractors`` distractors, timed per compare and extrapolated to 10^6 items; its matches are
checked against every candidate the index proposed (all tiers), and its top 10 against the search's.

Each ``--also SETTING=VALUE`` searches the backlog once more, on the same index, with that index setting
(one of ``QUERY_TIME_SETTINGS``, the ``Settings.index`` fields that act at query time: e.g.
``image_query_cell_slack_bits=64``): its latency, and how many queries got the same top 10 as the first pass.

    nice -n 10 .venv/bin/python -m bench.catalog.image.run --items 1000000
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from bench.catalog.image.distractors import Distractors  # noqa: E402
from bench.catalog.image.real import load as load_real  # noqa: E402
from bench.image import dataset, transforms  # noqa: E402
from shared.index.image import ImageIndex  # noqa: E402
from shared.index.image_hashes import alignment_bits  # noqa: E402
from shared.index.replica import candidate_tiers, rank_key, verify_tiers  # noqa: E402
from shared.kinds.image import KIND, ImageFingerprint  # noqa: E402
from shared.protocol import Fingerprint, Match  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import ItemRecord  # noqa: E402

OUT = Path(__file__).resolve().parent
SEED_CATALOG, SEED_BACKLOG = 20261125, 20261126
TOP_K = 10
#: The index settings ``--also`` can change on a built index (``query_settings`` applies them), in that order.
QUERY_TIME_SETTINGS = ("image_query_cell_slack_bits", "image_code_weight_sigma_bits", "image_expand_from_matches",
                       "search_threads")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def record(key: int, name: str) -> ItemRecord:
    return ItemRecord(key, "bench", name, "image", "", True, None, 0.0, 0.0)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


class CountingKind:
    """The image kind, counting the full compares ``verify_tiers`` makes (candidates skipped by their bound
    are not counted); with ``bounded=False``, without ``compare_or_bound``: every candidate fully compared."""

    name = "image"

    def __init__(self, bounded: bool = True) -> None:
        self.full_compares = 0
        if not bounded:
            self.compare_or_bound = None  # verify_tiers then compares every candidate

    def compare(self, a: Fingerprint, b: Fingerprint, settings: Settings) -> Match:
        self.full_compares += 1
        return KIND.compare(a, b, settings)

    def compare_or_bound(self, a: Fingerprint, b: Fingerprint, settings: Settings, floor: float) -> Match | float:
        found = KIND.compare_or_bound(a, b, settings, floor)
        self.full_compares += isinstance(found, Match)
        return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--backlog", type=int, default=10_000)
    ap.add_argument("--exact-queries", type=int, default=100)
    ap.add_argument("--brute-queries", type=int, default=10)
    ap.add_argument("--brute-distractors", type=int, default=500)
    ap.add_argument("--also", action="append", default=[], metavar="SETTING=VALUE",
                    help="search the backlog again with this index setting (repeatable)")
    ap.add_argument("--out", default=str(OUT / "results.json"))
    args = ap.parse_args()
    if unknown := [a for a in args.also if a.partition("=")[0] not in QUERY_TIME_SETTINGS]:
        ap.error(f"--also takes one of {', '.join(QUERY_TIME_SETTINGS)}, not {', '.join(unknown)}")
    faiss.omp_set_num_threads(1)
    settings = Settings.from_env()  # MEDIAMATCH_INDEX_IMAGE_* variables try other index settings
    res: dict[str, Any] = {"args": vars(args), "index_settings": dataclasses.asdict(settings.index),
                           "uptime_before": uptime(), "cpus": os.cpu_count()}
    print(res["uptime_before"], flush=True)

    real = {k: ImageFingerprint.from_bytes(v) for k, v in load_real().items()}
    catalog_names = sorted(k for k in real if k.startswith("orig/") or k.startswith("seed1/"))
    key_of = {n: i for i, n in enumerate(catalog_names)}
    pool = [real[n] for n in catalog_names]
    positives = [p for p in dataset.build(0) if p.label == 1]
    n_real = len(catalog_names)
    n_distractors = max(0, args.items - n_real)
    catalog_gen = Distractors(pool, SEED_CATALOG)
    backlog_gen = Distractors(pool, SEED_BACKLOG)

    def name_of(key: int) -> str:
        return catalog_names[key] if key < n_real else f"distractor-{key - n_real}"

    def fingerprint_of(key: int) -> ImageFingerprint:
        return real[catalog_names[key]] if key < n_real else catalog_gen.make(key - n_real)

    # -- build ------------------------------------------------------------------------------------------
    rss0 = rss_gib()
    index = ImageIndex(settings)
    t0 = time.perf_counter()
    index.add_many([(key_of[n], real[n]) for n in catalog_names])
    gen_s = 0.0
    batch = 20_000
    for start in range(0, n_distractors, batch):
        g0 = time.perf_counter()
        items = [(n_real + i, catalog_gen.make(i)) for i in range(start, min(start + batch, n_distractors))]
        gen_s += time.perf_counter() - g0
        index.add_many(items)
        if (start // batch) % 10 == 0:
            print(f"  built {n_real + start + len(items)} items, {time.perf_counter() - t0:.0f} s, rss {rss_gib():.2f} GiB",
                  flush=True)
    index.compact_now()
    build_s = time.perf_counter() - t0
    memory = index.memory_bytes()
    res["build"] = {
        "items": len(index), "real_items": n_real, "distractors": n_distractors,
        "seconds_total": round(build_s, 1), "seconds_generating_distractors": round(gen_s, 1),
        "index_bytes": memory, "index_bytes_per_item": round(sum(memory.values()) / len(index), 1),
        "rss_gib_before": round(rss0, 2), "rss_gib_after": round(rss_gib(), 2),
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    print(json.dumps(res["build"]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))

    # -- the backlog: recall queries first, then new uploads ------------------------------------------------
    backlog: list[tuple[str, ImageFingerprint, int | None, str | None]] = [
        (p.target, real[p.target], key_of[p.source], p.tag) for p in positives
    ]
    for i in range(max(0, args.backlog - len(backlog))):
        backlog.append((f"upload-{i}", backlog_gen.make(i), None, None))
    backlog = backlog[: args.backlog]

    def query_settings(settings: Settings) -> None:
        """The index settings that act at query time only, applied to the built index."""
        index.words.slack_bits, index.words.weight_sigma_bits, index.expand_from_matches = (
            getattr(settings.index, name) for name in QUERY_TIME_SETTINGS[:3])  # search_threads: per search

    def search_backlog(settings: Settings) -> tuple[dict[str, Any], list[list[int]]]:
        """Every backlog query's top-10 search: the statistics, and each query's top 10 (keys)."""
        query_settings(settings)
        lat: dict[str, list[float]] = {"index": [], "load": [], "verify": [], "total": []}
        # Total ms by kind of query: copies settled by the exact head, the other copies, new uploads.
        by_group: dict[str, list[float]] = collections.defaultdict(list)
        candidates_n: list[int] = []
        full_n: list[int] = []
        settled = 0  # queries whose exact head settled the top 10 (the local stage did not run)
        counting = CountingKind()
        per_family: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.Counter())
        false_top: int = 0
        missed_queries: list[dict[str, Any]] = []  # pairwise matches that neither the top 10 nor crowding explain
        loaded: list[int] = []  # the candidates one query compared, and the seconds spent loading them
        load_s = [0.0]

        def load(keys: list[int]) -> list[tuple[ItemRecord, ImageFingerprint]]:
            t0 = time.perf_counter()
            pairs = [(record(k, name_of(k)), fingerprint_of(k)) for k in keys]
            loaded.extend(keys)
            load_s[0] += time.perf_counter() - t0
            return pairs

        u0 = uptime()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        tops: list[list[int]] = []
        for name, q, truth, tag in backlog:
            t_a = time.perf_counter()
            tiers = candidate_tiers(index, q, max(TOP_K * 20, settings.index.min_candidates),
                                    settings.index.search_threads)
            t_b = time.perf_counter()
            loaded.clear()
            load_s[0] = 0.0
            counting.full_compares = 0
            hits = verify_tiers(counting, q, tiers, load, settings, TOP_K, settings.image.match_threshold)  # type: ignore[arg-type]
            t_d = time.perf_counter()
            keys = list(loaded)
            # The local stage runs inside verify_tiers, and only when the exact head does not settle the top 10.
            index_s = t_b - t_a + tiers.lazy_seconds
            for part, v in (("index", index_s), ("load", load_s[0]), ("verify", t_d - t_a - index_s - load_s[0]),
                            ("total", t_d - t_a)):
                lat[part].append(1000 * v)
            group = "new_upload" if truth is None else "settled" if tiers.settled else "unsettled"
            by_group[group].append(1000 * (t_d - t_a))
            candidates_n.append(len(keys))
            settled += tiers.settled
            full_n.append(counting.full_compares)
            matched = [h.item.pk for h in hits if h.match.similarity_score >= settings.image.match_threshold]
            tops.append([h.item.pk for h in hits])
            if truth is None:
                false_top += bool(matched)
                continue
            assert tag is not None
            fam = per_family[transforms.family(tag)]
            fam["n"] += 1
            fam["recall_at_10"] += truth in matched
            fam["candidate"] += truth in keys
            pair = KIND.compare(q, real[catalog_names[truth]], settings)
            fam["pairwise"] += pair.similarity_score >= settings.image.match_threshold
            fam["pairwise_and_found"] += pair.similarity_score >= settings.image.match_threshold and truth in matched
            # Crowded out: ten matched hits that rank before the original (other copies of the same photo among
            # the seed-1 variants); brute force's top 10 would leave the original out too.
            mine = rank_key(pair.similarity_score, catalog_names[truth])
            crowded = truth not in matched and len(matched) == TOP_K and all(
                rank_key(h.match.similarity_score, h.item.external_id) < mine for h in hits)
            found = truth in matched or (crowded and pair.similarity_score >= settings.image.match_threshold)
            fam["recall_at_10_or_crowded"] += found
            if not found and pair.similarity_score >= settings.image.match_threshold:
                missed_queries.append({"query": name, "tag": tag, "candidate": truth in keys, "compared": len(keys),
                                       "pairwise_score": round(pair.similarity_score, 3), "method": pair.details["method"]})
        wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        return {
            "queries": len(backlog), "uptime_before": u0, "uptime_after": uptime(),
            "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1),
            "latency_ms": {part: {"p50": round(pct(v, 50), 2), "p90": round(pct(v, 90), 2), "p99": round(pct(v, 99), 2),
                                  "mean": round(float(np.mean(v)), 2)} for part, v in lat.items()},
            "candidates": {"p50": pct(candidates_n, 50), "p99": pct(candidates_n, 99), "max": max(candidates_n)},
            "full_compares": {"p50": pct(full_n, 50), "p99": pct(full_n, 99), "max": max(full_n)},
            "settled_by_exact_head": settled,
            "total_ms_by_query_kind": {g: {"queries": len(v), "p50": round(pct(v, 50), 2), "p90": round(pct(v, 90), 2),
                                           "p99": round(pct(v, 99), 2)} for g, v in sorted(by_group.items())},
            "new_uploads_with_a_match": false_top,
            "per_family": {f: dict(c) for f, c in per_family.items()},
            "missed": missed_queries,
        }, tops

    res["search"], tops = search_backlog(settings)
    print(json.dumps(res["search"]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    for also in args.also:  # the same backlog again, with other index settings, on the same index
        name, _, value = also.partition("=")
        typed = type(getattr(settings.index, name))(value)
        other = dataclasses.replace(settings, index=dataclasses.replace(settings.index, **{name: typed}))
        stats, tops_other = search_backlog(other)
        stats["top10_identical_to_the_first_pass"] = sum(a == b for a, b in zip(tops, tops_other, strict=True))
        res[f"search_with_{name}={value}"] = stats
        print(also, json.dumps({k: stats[k] for k in ("latency_ms", "total_ms_by_query_kind",
                                                      "top10_identical_to_the_first_pass")}), flush=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
    query_settings(settings)  # back to the first pass's (the checks below search the index)

    # -- brute force (1): the exact hash scan over every item -------------------------------------------
    rng = random.Random(5)
    sample = rng.sample(range(len(backlog)), min(args.exact_queries, len(backlog)))
    used = index._used  # noqa: SLF001 - the benchmark reads the index's arrays
    codes, alive, item_keys = index._codes[:used], index._alive[:used], index._keys[:used]  # noqa: SLF001
    mismatches, scan_ms, mih_ms, within = 0, [], [], []
    for i in sample:
        q = backlog[i][1]
        qcodes = np.frombuffer(b"".join(q.hashes), np.uint8).reshape(8, 32)
        t_a = time.perf_counter()
        bits = alignment_bits(qcodes, codes)
        live = np.flatnonzero(alive & (bits <= settings.index.image_hash_radius_bits))
        brute = sorted((int(item_keys[s]), int(bits[s])) for s in live)
        t_b = time.perf_counter()
        fast = sorted(index.hash_neighbours(q))
        t_c = time.perf_counter()
        scan_ms.append(1000 * (t_b - t_a))
        mih_ms.append(1000 * (t_c - t_b))
        within.append(len(brute))
        mismatches += brute != fast
    res["exact_hash_check"] = {
        "queries": len(sample), "mismatches": mismatches, "items_within_radius_mean": float(np.mean(within)),
        "brute_scan_ms_p50": round(pct(scan_ms, 50), 2), "index_ms_p50": round(pct(mih_ms, 50), 3),
        "speedup_p50": round(pct(scan_ms, 50) / max(pct(mih_ms, 50), 1e-9), 1),
    }
    print(json.dumps(res["exact_hash_check"]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))

    # -- brute force (2): the full compare against real items and a distractor sample --------------------
    recall_queries = [b for b in backlog if b[2] is not None]
    brute_sample = random.Random(9).sample(recall_queries, min(args.brute_queries, len(recall_queries)))
    drng = np.random.default_rng(11)
    distractor_keys = (n_real + drng.choice(max(n_distractors, 1), min(args.brute_distractors, n_distractors),
                                            replace=False)).tolist() if n_distractors else []
    compare_s, compares, missed, brute_matches, found_matches = 0.0, 0, [], 0, 0
    top_missed: list[dict[str, Any]] = []
    top_identical = 0
    threshold = settings.image.match_threshold
    for name, q, _truth, tag in brute_sample:
        tiers = candidate_tiers(index, q, max(TOP_K * 20, settings.index.min_candidates))
        keys = {k for tier in tiers.all() for k in tier}
        searched = verify_tiers(KIND, q, tiers, lambda keys: [(record(k, name_of(k)), fingerprint_of(k)) for k in keys],
                                settings, TOP_K, threshold)
        top_index = [h.item.pk for h in searched if h.match.similarity_score >= threshold]
        brute: list[tuple[tuple[float, str], int, float]] = []
        for k in list(range(n_real)) + distractor_keys:
            fp = fingerprint_of(k)
            t_a = time.perf_counter()
            m = KIND.compare(q, fp, settings)
            compare_s += time.perf_counter() - t_a
            compares += 1
            if m.similarity_score >= threshold:
                brute_matches += 1
                brute.append((rank_key(m.similarity_score, name_of(k)), k, m.similarity_score))
                found_matches += k in keys
                if k not in keys:
                    missed.append({"query": name, "tag": tag, "item": name_of(k), "score": round(m.similarity_score, 3),
                                   "method": m.details["method"]})
        top_brute = sorted(brute)[:TOP_K]
        top_identical += [k for _, k, _ in top_brute] == top_index
        top_missed += [{"query": name, "item": name_of(k), "score": round(score, 3)}
                       for _, k, score in top_brute if k not in top_index]
    per_compare_ms = 1000 * compare_s / max(compares, 1)
    res["brute_force_compare"] = {
        "queries": len(brute_sample), "items_per_query": n_real + len(distractor_keys), "compares": compares,
        "compare_ms_mean": round(per_compare_ms, 3),
        "extrapolated_query_s_at_catalog_size": round(per_compare_ms * (n_real + n_distractors) / 1000, 1),
        "matches": brute_matches, "matches_among_candidates": found_matches, "missed": missed[:40],
        "top10_identical_queries": top_identical, "top10_missed": top_missed,
        "distractor_matches": sum(1 for m in missed if m["item"].startswith("distractor")),
    }
    print(json.dumps(res["brute_force_compare"]), flush=True)
    res["uptime_after"] = uptime()
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
