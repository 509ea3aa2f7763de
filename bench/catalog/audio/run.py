"""Audio catalog benchmark: 100+ hours indexed; recall through the catalog vs pairwise; 10 s query latency.

Usage (after ``bench/audio/build_set.py`` and ``distractors.py``)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/catalog/audio/run.py

Prints the numbers that REPORT.md quotes and writes ``bench/cache/catalog/audio/results.json``.

The catalog: the audio benchmark's source tracks (``bench/data/audio/tracks``) and the pool recordings
(``distractors.pool_paths``), both fingerprinted from their files, plus the synthesised distractors
(``distractors.py``, cached fingerprints). Items are added one by one to ``AudioIndex``.

- **Recall.** The positives of ``bench/data/audio/manifest.json`` in the split (``--split``, default eval;
  at most ``--per-group`` per transform and length, seeded) (a transformed excerpt inside unrelated
  filler, encoded) is a query, fingerprinted from its file. Through the catalog: ``candidates`` then the
  full ``compare`` of those, top 10, as ``CatalogIndex.search`` does. A hit is the query's source track
  among the hits with ``match`` (score >= threshold and a segment of at least ``min_segment_s``) and a
  segment whose starts are within 0.5 s of the truth on both sides (``bench/audio/run.py``'s rule).
  Pairwise: the same rule on ``compare(query, source track)`` (the catalog's direction), and, for
  reference, on ``compare(source track, query)`` (``bench/audio/run.py``'s direction).
- **False positives.** Matching hits of any other item, per query.
- **10 s queries.** For each 10 s positive, its transformed excerpt alone (the truth span of the decoded
  target); fingerprinting and search timed apart. Brute force (``compare`` with every item) runs on a seeded
  subset of them in the same run, timed, with its hits checked against the catalog's.
- **Ingest.** CPU seconds (this process, one core) of decode + fingerprint + ``add`` for the files.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

import distractors  # noqa: E402

from shared.errors import DecodeFailed  # noqa: E402
from shared.index.audio import AudioIndex  # noqa: E402
from shared.kinds.audio import KIND, AudioFingerprint, fingerprint_samples  # noqa: E402
from shared.kinds.audio.decode import SAMPLE_RATE_HZ  # noqa: E402
from shared.settings import Settings  # noqa: E402

DATA = ROOT / "bench" / "data" / "audio"
CACHE = ROOT / "bench" / "cache" / "catalog" / "audio"
SETTINGS = Settings()
TOP_K = 10
TOL_S = 0.5


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


decode = distractors.decode  # the kind's decoder, the MIME type sniffed; empty when a file does not decode


def fingerprint_file(path: Path) -> tuple[AudioFingerprint, float]:
    """The kind's fingerprint of a file and the CPU seconds it took (decode included)."""
    t0 = time.process_time()
    fp = fingerprint_samples(decode(path))
    return fp, time.process_time() - t0


def decide(q: AudioFingerprint, item: AudioFingerprint) -> tuple[float, list]:
    """Score and the segments that count (empty unless ``match``), as the envelope decides them."""
    m = KIND.compare(q, item, SETTINGS)
    segs = [s for s in m.segments if s.duration_s >= SETTINGS.audio.min_segment_s]
    if m.similarity_score < SETTINGS.audio.match_threshold or not segs:
        return m.similarity_score, []
    return m.similarity_score, segs


def rank(scored: list[tuple[int, float, list]]) -> list[tuple[int, float, list]]:
    scored = [h for h in scored if h[1] > 0]
    scored.sort(key=lambda h: (-round(h[1], 4), h[0]))
    return scored[:TOP_K]


def search(index: AudioIndex, items: list[AudioFingerprint], q: AudioFingerprint) -> tuple[list, int]:
    keys = index.candidates(q, limit=max(TOP_K * 20, SETTINGS.index.min_candidates))
    return rank([(k, *decide(q, items[k])) for k in keys]), len(keys)


def brute(items: list[AudioFingerprint], q: AudioFingerprint) -> list:
    return rank([(k, *decide(q, fp)) for k, fp in enumerate(items)])


def located(segs: list, q_start: float, item_start: float) -> bool:
    return any(abs(s.source_start_s - q_start) <= TOL_S and abs(s.target_start_s - item_start) <= TOL_S for s in segs)


def family(transform: str) -> str:
    if transform.startswith(("pitch", "tempo", "speed")):
        return "pitch/tempo/speed " + ("5%" if transform.endswith("_5") else "10%")
    return "noise 10 dB" if transform.startswith("noise") else "codecs, resampling, EQ"


def pct(x: list[float], q: float) -> float:
    return round(float(np.percentile(x, q)) * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brute-queries", type=int, default=30)
    ap.add_argument("--max-distractors", type=int, default=100_000)
    ap.add_argument("--split", default="eval", help="positives of this split (eval, tune or all)")
    ap.add_argument("--per-group", type=int, default=12, help="positives per (transform, length), seeded")
    args = ap.parse_args()
    report: dict[str, object] = {"uptime_before": uptime(), "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    manifest = json.loads((DATA / "manifest.json").read_text())
    positives = [p for p in manifest["positives"] if args.split in ("all", p["split"])]
    by_group: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for p in positives:
        by_group[(p["transform"], p["length_s"])].append(p)
    pick = np.random.default_rng(11)
    positives = [
        g[i] for _, g in sorted(by_group.items()) for i in sorted(pick.permutation(len(g))[: args.per_group].tolist())
    ]
    report["split"] = f"{args.split}, {args.per_group} per (transform, length), seeded: {len(positives)} positives"
    index = AudioIndex(SETTINGS)
    items: list[AudioFingerprint] = []
    names: list[str] = []

    # -- ingest the real files: decode + fingerprint + add, CPU time of this process -----------------------
    files = [Path(t["path"]) for t in manifest["tracks"]] + distractors.pool_paths()
    cpu_s, audio_s, add_s = 0.0, 0.0, 0.0
    seen = set()
    for path in files:
        if path in seen:
            continue
        seen.add(path)
        fp, spent = fingerprint_file(path)
        if fp.duration_s < 20.0:  # does not decode (one pool file is not what its name says)
            continue
        t0 = time.process_time()
        index.add(len(items), fp)
        add_s += time.process_time() - t0
        cpu_s += spent
        audio_s += fp.duration_s
        items.append(fp)
        names.append(str(path))
    report["ingest"] = {
        "files": len(items), "audio_h": round(audio_s / 3600, 3), "decode_fingerprint_cpu_s": round(cpu_s, 2),
        "add_cpu_s": round(add_s, 2), "x_realtime_per_core": round(audio_s / (cpu_s + add_s), 1),
    }
    print(json.dumps(report["ingest"]), flush=True)
    track_key = {t["name"]: names.index(t["path"]) for t in manifest["tracks"]}
    filler_key = {t["path"]: names.index(t["path"]) for t in manifest["tracks"]}

    # -- the synthesised distractors ---------------------------------------------------------------------
    t0 = time.process_time()
    for n, path in enumerate(sorted(distractors.OUT.glob("*.bin"), key=lambda p: int(p.stem))):
        if n >= args.max_distractors:
            break
        try:
            fp = AudioFingerprint.from_bytes(path.read_bytes())
        except DecodeFailed:  # a distractor being written when its builder was stopped
            continue
        index.add(len(items), fp)
        items.append(fp)
        names.append(f"distractor-{path.stem}")
    index.candidates(items[0], 1)  # flush the pending postings into sorted segments
    total_s = sum(fp.duration_s for fp in items)
    report["catalog"] = {
        "items": len(items), "hours": round(total_s / 3600, 2), "postings": index.n_postings,
        "index_bytes": index.index_bytes(), "index_kB_per_minute": round(index.index_bytes() / 1000 / (total_s / 60), 2),
        "fingerprint_kB_per_minute": round(sum(len(fp.to_bytes()) for fp in items) / 1000 / (total_s / 60), 2),
        "add_distractors_cpu_s": round(time.process_time() - t0, 2),
    }
    print(json.dumps(report["catalog"]), flush=True)

    # -- recall: every positive, catalog vs pairwise -------------------------------------------------------
    rows = []
    t_full = []
    for p in positives:
        q, _ = fingerprint_file(Path(p["target_path"]))
        k = track_key[p["source"]]
        t0 = time.perf_counter()
        hits, n_cand = search(index, items, q)
        t_full.append(time.perf_counter() - t0)
        mine = next((segs for kk, _, segs in hits if kk == k), [])
        pair_segs = decide(q, items[k])[1]
        fwd = KIND.compare(items[k], q, SETTINGS)
        fwd_segs = [s for s in fwd.segments if s.duration_s >= SETTINGS.audio.min_segment_s]
        fwd_hit = fwd.similarity_score >= SETTINGS.audio.match_threshold and any(
            abs(s.source_start_s - p["source_start_s"]) <= TOL_S and abs(s.target_start_s - p["target_start_s"]) <= TOL_S
            for s in fwd_segs
        )
        rows.append({
            "id": p["id"], "split": p["split"], "family": family(p["transform"]), "length_s": p["length_s"],
            "catalog": located(mine, p["target_start_s"], p["source_start_s"]),
            "pairwise": located(pair_segs, p["target_start_s"], p["source_start_s"]),
            "pairwise_forward": bool(fwd_hit),
            # Matching hits of other items, the query's own filler track aside (it is in the catalog too).
            "false_hits": sum(1 for kk, _, segs in hits if kk not in (k, filler_key.get(p["filler_path"])) and segs),
            "candidates": n_cand,
        })
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[f"{r['family']} | {r['length_s']:.0f} s"].append(r)
        groups["all"].append(r)
        groups[f"split {r['split']}"].append(r)
    report["recall"] = {
        g: {m: round(100 * float(np.mean([r[m] for r in rs])), 1) for m in ("catalog", "pairwise", "pairwise_forward")}
        | {"n": len(rs)}
        for g, rs in sorted(groups.items())
    }
    report["full_target_queries"] = {
        "n": len(rows), "search_p50_ms": pct(t_full, 50), "search_p95_ms": pct(t_full, 95),
        "candidates_median": statistics.median(r["candidates"] for r in rows),
        "queries_with_false_hits": sum(r["false_hits"] > 0 for r in rows),
    }
    print(json.dumps(report["recall"], indent=0), flush=True)
    print(json.dumps(report["full_target_queries"]), flush=True)

    # -- 10 s queries: latency, and brute force on a subset -----------------------------------------------
    tens = [p for p in positives if p["length_s"] == 10.0]
    t_fp, t_cat, n_cands, found = [], [], [], 0
    qs = []
    for p in tens:
        x = decode(Path(p["target_path"]))
        w = x[int(p["target_start_s"] * SAMPLE_RATE_HZ) : int(p["target_end_s"] * SAMPLE_RATE_HZ)]
        t0 = time.perf_counter()
        q = fingerprint_samples(w)
        t_fp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hits, n = search(index, items, q)
        t_cat.append(time.perf_counter() - t0)
        n_cands.append(n)
        found += any(kk == track_key[p["source"]] and segs for kk, _, segs in hits)
        qs.append(q)
    rng = np.random.default_rng(7)
    subset = sorted(rng.choice(len(qs), min(args.brute_queries, len(qs)), replace=False).tolist())
    t_brute, t_cat_sub, missed, identical = [], [], 0, 0
    for i in subset:
        t0 = time.perf_counter()
        hits, _ = search(index, items, qs[i])
        t_cat_sub.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = brute(items, qs[i])
        t_brute.append(time.perf_counter() - t0)
        missed += len({k for k, _, s in ref if s} - {k for k, _, s in hits if s})
        identical += [(k, round(s, 4)) for k, s, _ in ref] == [(k, round(s, 4)) for k, s, _ in hits]
    report["query_10s"] = {
        "n": len(tens), "fingerprint_p95_ms": pct(t_fp, 95), "search_p50_ms": pct(t_cat, 50),
        "search_p95_ms": pct(t_cat, 95),
        "fingerprint_plus_search_p95_ms": pct([a + b for a, b in zip(t_fp, t_cat, strict=True)], 95),
        "candidates_median": statistics.median(n_cands), "candidates_max": max(n_cands),
        "source_matched_share": round(found / max(len(tens), 1), 4),
        "brute_subset": len(subset), "brute_p50_ms": pct(t_brute, 50), "brute_p95_ms": pct(t_brute, 95),
        "catalog_on_subset_p50_ms": pct(t_cat_sub, 50),
        "speedup_median": round(statistics.median(b / c for b, c in zip(t_brute, t_cat_sub, strict=True)), 1),
        "brute_matches_missed_by_catalog": missed, "identical_top_k": f"{identical}/{len(subset)}",
    }
    print(json.dumps(report["query_10s"]), flush=True)
    report["uptime_after"] = uptime()
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "results.json").write_text(json.dumps({**report, "rows": rows}, indent=1))
    print(report["uptime_before"], "|", report["uptime_after"])


if __name__ == "__main__":
    main()
