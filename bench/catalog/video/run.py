"""Video catalog benchmark: 50+ hours indexed, 30 s clip queries, VCSL segment F-score via the catalog vs pairwise.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python bench/catalog/video/run.py [--hours 50]`` (after
``bench/video/build.py``). Prints the report and writes ``bench/cache/catalog/video/results.json``.

The catalog (see REPORT.md):

- real footage: every file of the video benchmark (``bench/data/video``: targets, sources that are not
  queries, negatives, fresh negatives, special cases), fingerprinted by the video kind from the files
  (decode included; cached by content hash under ``bench/cache/catalog/video``);
- distractors up to ``--hours``: ``distractors.py`` (pan and zoom over real photos, hashed in memory).

Queries: the sources of ``bench/data/video/pairs.json`` (the pairwise benchmark's query side). For every
query, in the same run:

- brute force: ``compare`` with every catalog item (the reference, and what a user without a catalog does);
- catalog: ``VideoIndex.candidates`` then ``compare`` with those only (what ``CatalogIndex.search`` does).

Accuracy: for each listed pair (source, target), the catalog's prediction is the target's hit among the
top ``TOP_K`` (its segments when it matches, else nothing), the pairwise prediction is ``compare`` of the
pair (as ``bench/video/run.py`` decides it); both are scored with VCSL's segment P/R/F (``vcsl_metric``).
Latency: 30 s windows of the queries' fingerprints (every 15 s, sliced from the fingerprint, so no
re-decode), timed end to end (index + compares) against brute force on the same windows.
Ingest: the video benchmark's 720p clip (``bench/video/speed.py``), fingerprint (decode included) plus
``add``, on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "bench" / "video"))
sys.path.insert(0, str(ROOT))

import distractors  # noqa: E402
import vcsl_metric  # noqa: E402

from shared.index.video import VideoIndex  # noqa: E402
from shared.kinds.video import KIND, VideoFingerprint  # noqa: E402
from shared.protocol import LocalMedia  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.sniff import sniff  # noqa: E402

DATA = ROOT / "bench" / "data" / "video"
CACHE = ROOT / "bench" / "cache" / "catalog" / "video"
TOP_K = 10
SETTINGS = Settings()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def media(path: Path) -> LocalMedia:
    data = path.read_bytes()
    return LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), sniff(data[:4096]))


def fingerprint(path: Path) -> VideoFingerprint:
    m = media(path)
    cached = CACHE / "fp" / f"{m.sha256[:24]}.bin"
    if cached.exists():
        return VideoFingerprint.from_bytes(cached.read_bytes())
    fp = KIND.fingerprint(m, SETTINGS)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(fp.to_bytes())
    return fp


def decide(q: VideoFingerprint, item: VideoFingerprint) -> tuple[float, list[list[float]]]:
    """Score and the predicted boxes ``[q_start, r_start, q_end, r_end]`` (empty unless it matches), as
    ``bench/video/run.py`` decides a pair."""
    m = KIND.compare(q, item, SETTINGS)
    segs = [s for s in m.segments if s.duration_s >= SETTINGS.video.min_segment_s]
    if m.similarity_score < SETTINGS.video.match_threshold or not segs:
        return m.similarity_score, []
    return m.similarity_score, [[s.source_start_s, s.target_start_s, s.source_end_s, s.target_end_s] for s in segs]


def search(index: VideoIndex, items: list[VideoFingerprint], q: VideoFingerprint) -> tuple[list[tuple[int, float, list]], int]:
    """Catalog search: candidates, full compare, top K by score (ties by id). Returns hits and #candidates."""
    keys = index.candidates(q, limit=max(TOP_K * 20, SETTINGS.index.min_candidates))
    scored = [(k, *decide(q, items[k])) for k in keys]
    scored = [h for h in scored if h[1] > 0]
    scored.sort(key=lambda h: (-round(h[1], 4), h[0]))
    return scored[:TOP_K], len(keys)


def brute(items: list[VideoFingerprint], q: VideoFingerprint) -> list[tuple[int, float, list]]:
    scored = [(k, *decide(q, fp)) for k, fp in enumerate(items)]
    scored = [h for h in scored if h[1] > 0]
    scored.sort(key=lambda h: (-round(h[1], 4), h[0]))
    return scored[:TOP_K]


class BruteCache:
    """Brute-force answers do not depend on the index: kept between runs, keyed by the matcher's source
    (``shared/kinds/video``, ``shared/align.py``), the settings and the catalog, so a re-run after an index
    change compares against the same reference without redoing it. Its timings are cached with it."""

    def __init__(self, names: list[str]) -> None:
        src = b"".join(p.read_bytes() for p in sorted((ROOT / "shared" / "kinds" / "video").glob("*.py")))
        src += (ROOT / "shared" / "align.py").read_bytes() + repr(SETTINGS.video).encode() + "\n".join(names).encode()
        self.path = CACHE / f"brute_{hashlib.sha256(src).hexdigest()[:16]}.json"
        self.data: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, items: list[VideoFingerprint], q: VideoFingerprint) -> tuple[list, float]:
        if key not in self.data:
            t0 = time.perf_counter()
            hits = brute(items, q)
            self.data[key] = {"hits": hits, "seconds": time.perf_counter() - t0, "uptime": uptime()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data))
        entry = self.data[key]
        return [tuple(h) for h in entry["hits"]], entry["seconds"]


def window(fp: VideoFingerprint, start: int, n: int) -> VideoFingerprint:
    """Samples ``start .. start + n`` of ``fp`` as a fingerprint of their own (a clip cut on the grid)."""
    return VideoFingerprint(fp.hashes[start : start + n], duration_s=n / fp.sample_fps, fps=fp.fps, sample_fps=fp.sample_fps)


def vcsl(preds: list[list], truths: list[list]) -> dict[str, float]:
    ps, rs = zip(*(vcsl_metric.precision_recall(p, t) for p, t in zip(preds, truths, strict=True)), strict=True)
    p, r = float(np.mean(ps)), float(np.mean(rs))
    return {"precision": round(p, 4), "recall": round(r, 4), "f": round(2 * p * r / max(p + r, 1e-9), 4)}


def ingest_speed() -> dict[str, float]:
    from speed import clip  # bench/video/speed.py: the 70 s 720p clip of real footage

    path = clip("720p")
    m = media(path)
    t0 = time.process_time()
    fp = KIND.fingerprint(m, SETTINGS)
    index = VideoIndex(SETTINGS)
    index.add(0, fp)
    cpu_s = time.process_time() - t0
    return {"clip_s": round(fp.duration_s, 1), "cpu_s": round(cpu_s, 2), "x_realtime_per_core": round(fp.duration_s / cpu_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=50.0)
    ap.add_argument("--latency-queries", type=int, default=40)
    args = ap.parse_args()
    report: dict[str, object] = {"uptime_before": uptime(), "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    pairs = json.loads((DATA / "pairs.json").read_text())
    queries = sorted({p["source"] for p in pairs})
    real = sorted(
        p for d in ("targets", "sources", "negatives", "fresh", "special") for p in (DATA / d).glob("*")
        if p.suffix in (".mp4", ".mkv", ".webm", ".avi", ".mov") and str(p) not in queries
    )
    t0 = time.perf_counter()
    q_fps = {q: fingerprint(Path(q)) for q in queries}
    items: list[VideoFingerprint] = [fingerprint(p) for p in real]
    names = [str(p) for p in real]
    real_s = sum(fp.duration_s for fp in items)
    print(f"real footage: {len(items)} files, {real_s / 3600:.2f} h, {len(queries)} queries ({time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    photos = [distractors.load_gray(p) for p in distractors.photo_paths()]
    rng = np.random.default_rng(3)
    seed, total_s = 0, real_s
    while total_s < args.hours * 3600:
        d_s = float(rng.uniform(120, 600))
        cached = CACHE / "distractors" / f"{seed}.bin"
        if cached.exists():
            items.append(VideoFingerprint.from_bytes(cached.read_bytes()))
        else:
            items.append(distractors.distractor(photos, d_s, seed))
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(items[-1].to_bytes())
        names.append(f"distractor-{seed}")
        total_s += items[-1].duration_s
        seed += 1
    print(f"distractors: {seed} from {len(photos)} photos, {(total_s - real_s) / 3600:.2f} h ({time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    index = VideoIndex(SETTINGS)
    for k, fp in enumerate(items):
        index.add(k, fp)
    index.candidates(items[0], 1)  # flush
    build_s = time.perf_counter() - t0
    n_frames = int(sum(int(fp.informative.sum()) for fp in items))
    report["catalog"] = {
        "items": len(items), "real_items": len(real), "hours": round(total_s / 3600, 2),
        "real_hours": round(real_s / 3600, 2), "informative_frames": n_frames,
        "index_bytes": index.memory_bytes(), "index_bytes_per_minute": round(index.memory_bytes() / (total_s / 60), 1),
        "index_build_s": round(build_s, 2),
    }
    print(json.dumps(report["catalog"]))

    # -- accuracy: full queries, catalog vs brute force vs pairwise --------------------------------------
    by_path = {n: k for k, n in enumerate(names)}
    cache = BruteCache(names)
    cat_hits, brute_hits, same = {}, {}, 0
    for q in queries:
        cat_hits[q], _ = search(index, items, q_fps[q])
        brute_hits[q], _ = cache.get(q, items, q_fps[q])
        same += [(k, round(s, 4)) for k, s, _ in cat_hits[q]] == [(k, round(s, 4)) for k, s, _ in brute_hits[q]]
    preds = {"catalog": [], "brute": [], "pairwise": []}
    truths = []
    for p in pairs:
        truths.append(p["truth"])
        k = by_path[p["target"]]
        preds["catalog"].append(next((b for kk, _, b in cat_hits[p["source"]] if kk == k), []))
        preds["brute"].append(next((b for kk, _, b in brute_hits[p["source"]] if kk == k), []))
        preds["pairwise"].append(decide(q_fps[p["source"]], items[k])[1])
    report["accuracy"] = {name: vcsl(pr, truths) for name, pr in preds.items()}
    report["accuracy"]["queries_with_identical_top_k"] = f"{same}/{len(queries)}"
    print(json.dumps(report["accuracy"]))

    # -- latency: 30 s windows --------------------------------------------------------------------------
    windows = []
    for q in queries:
        fp = q_fps[q]
        n = int(30 * fp.sample_fps)
        windows += [(f"{q}@{s}", window(fp, s, n)) for s in range(0, fp.hashes.shape[0] - n + 1, n // 2)]
    rng = np.random.default_rng(5)
    windows = [windows[i] for i in sorted(rng.choice(len(windows), min(args.latency_queries, len(windows)), replace=False))]
    t_cat, t_brute, n_cand, missed, missed_any, idx_only = [], [], [], 0, 0, []
    for key, w in windows:
        t0 = time.perf_counter()
        index.candidates(w, 1 << 30)
        idx_only.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hits, n = search(index, items, w)
        t_cat.append(time.perf_counter() - t0)
        n_cand.append(n)
        ref, seconds = cache.get(key, items, w)
        t_brute.append(seconds)
        missed += len({k for k, _, b in ref if b} - {k for k, _, b in hits if b})  # matching hits only
        missed_any += len({k for k, _, _ in ref} - {k for k, _, _ in hits})

    def pct(x: list[float], q: float) -> float:
        return round(float(np.percentile(x, q)) * 1000, 1)

    report["latency_30s_ms"] = {
        "queries": len(windows),
        "catalog_p50": pct(t_cat, 50), "catalog_p95": pct(t_cat, 95), "index_only_p95": pct(idx_only, 95),
        "brute_p50": pct(t_brute, 50), "brute_p95": pct(t_brute, 95),
        "speedup_median": round(statistics.median(b / c for b, c in zip(t_brute, t_cat, strict=True)), 1),
        "candidates_median": statistics.median(n_cand), "candidates_max": max(n_cand),
        "brute_matches_missed_by_catalog": missed, "brute_top_k_hits_missed_by_catalog": missed_any,
        "brute_timings": "cached with the reference (same machine, an earlier run when reused)",
    }
    print(json.dumps(report["latency_30s_ms"]))
    report["ingest_720p"] = ingest_speed()
    print(json.dumps(report["ingest_720p"]))
    report["uptime_after"] = uptime()
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "results.json").write_text(json.dumps(report, indent=1))
    print(report["uptime_before"], "|", report["uptime_after"])


if __name__ == "__main__":
    main()
