"""Run the image benchmark: every method on the same pairs, then recall, FPR, speed and size.

Usage (from the repo root; a benchmark, not a test, run by hand):

    .venv/bin/python -m bench.image.run --seed 0 --workers 2 --out bench/image/results_seed0.json

Seed 1 is the tuning split (its transforms are drawn with other parameters); seed 0 is the evaluation
split reported in ``REPORT.md``. Peers' fingerprints are cached under ``bench/cache/image/``; ours are
always recomputed. Timing is a separate single-process, single-thread pass (decode included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.image import dataset, transforms  # noqa: E402
from bench.image.methods import METHODS  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / "cache" / "image"
FPR_TARGET = 1e-4


def _init() -> None:
    cv2.setNumThreads(1)


def _fp_job(args: tuple[str, str]) -> tuple[str, bytes]:
    method, rel = args
    return rel, METHODS[method].fingerprint(dataset.DATA / rel)


def _cmp_job(args: tuple[str, list[tuple[bytes, bytes]]]) -> list[float]:
    method, chunk = args
    return [METHODS[method].compare(a, b) for a, b in chunk]


def _save_blobs(path: Path, blobs: dict[str, bytes]) -> None:
    keys = sorted(blobs)
    index = {k: len(blobs[k]) for k in keys}
    path.with_suffix(".json").write_text(json.dumps(index))
    path.write_bytes(b"".join(blobs[k] for k in keys))


def _load_blobs(path: Path) -> dict[str, bytes] | None:
    if not path.exists() or not path.with_suffix(".json").exists():
        return None
    index = json.loads(path.with_suffix(".json").read_text())
    raw, out, pos = path.read_bytes(), {}, 0
    for k, n in index.items():
        out[k] = raw[pos : pos + n]
        pos += n
    return out


def fingerprints(method: str, files: list[str], seed: int, pool: Pool) -> dict[str, bytes]:
    cache = CACHE / f"{method}_seed{seed}.bin"
    if method != "mediamatch":
        cached = _load_blobs(cache)
        if cached is not None and all(f in cached for f in files):
            return cached
    out = dict(pool.imap_unordered(_fp_job, [(method, f) for f in files], chunksize=8))
    CACHE.mkdir(parents=True, exist_ok=True)
    _save_blobs(cache, out)  # ours is saved for calibrate.py, but always recomputed
    return out


def scores(method: str, pairs: list[dataset.Pair], fps: dict[str, bytes], pool: Pool) -> np.ndarray:
    items = [(fps[p.source], fps[p.target]) for p in pairs]
    chunks = [(method, items[i : i + 200]) for i in range(0, len(items), 200)]
    return np.array([s for part in pool.imap(_cmp_job, chunks) for s in part], np.float64)


def threshold_at_fpr(neg: np.ndarray, fpr: float) -> float:
    """The highest negative score a match must *exceed* so at most ``fpr`` of negatives match."""
    allowed = int(np.floor(fpr * len(neg)))
    ordered = np.sort(neg)[::-1]
    return float(ordered[allowed]) if allowed < len(ordered) else -np.inf


def summarise(pairs: list[dataset.Pair], method: str, s: np.ndarray) -> dict[str, object]:
    m = METHODS[method]
    labels = np.array([p.label for p in pairs])
    tags = np.array([p.tag for p in pairs])
    default = np.array([m.matches(x) for x in s])
    neg = s[labels == 0]
    cut = threshold_at_fpr(neg, FPR_TARGET)
    cut_no_seq = threshold_at_fpr(s[(labels == 0) & (tags != "sequence")], FPR_TARGET)
    per_transform: dict[str, dict[str, float]] = {}
    for name in transforms.NAMES:
        sel = (labels == 1) & (tags == name)
        per_transform[name] = {
            "n": int(sel.sum()),
            "recall_default": float(default[sel].mean()),
            "recall_at_fpr": float((s[sel] > cut).mean()),
            "recall_at_fpr_no_seq": float((s[sel] > cut_no_seq).mean()),
        }
    per_neg: dict[str, dict[str, float]] = {}
    for tag in sorted(set(tags[labels == 0])):
        sel = (labels == 0) & (tags == tag)
        per_neg[tag] = {"n": int(sel.sum()), "false_matches": int(default[sel].sum()),
                        "fpr": float(default[sel].mean())}
    worst = np.argsort(-np.where(labels == 0, s, -np.inf))[:8]
    return {
        "threshold": m.threshold_text,
        "negatives": int((labels == 0).sum()),
        "fpr_default": float(default[labels == 0].mean()),
        "false_matches_default": int(default[labels == 0].sum()),
        "score_cut_at_fpr": cut,
        "score_cut_at_fpr_no_seq": cut_no_seq,
        "per_transform": per_transform,
        "per_negative_tag": per_neg,
        "top_negatives": [(pairs[i].source, pairs[i].target, pairs[i].tag, float(s[i])) for i in worst],
    }


def timing(pairs: list[dataset.Pair], methods: list[str]) -> dict[str, dict[str, float]]:
    """Median and p95 wall time per pair (both decodes, both fingerprints, the compare), one thread."""
    _init()

    def megapixels(rel: str) -> float:
        with Image.open(dataset.DATA / rel) as img:
            return img.width * img.height / 1e6

    chosen = [p for p in pairs if p.source.endswith(".jpg") and p.target.endswith(".jpg")
              and p.tag in ("jpeg_q15", "crop_10", "mirror", "watermark", "brightness", "photo_photo")
              and 1.0 <= megapixels(p.source) <= 2.0 and 1.0 <= megapixels(p.target) <= 2.0]
    rng = np.random.default_rng(7)
    pos = [p for p in chosen if p.label == 1]
    neg = [p for p in chosen if p.label == 0]
    sample = [pos[i] for i in rng.choice(len(pos), min(40, len(pos)), replace=False)]
    sample += [neg[i] for i in rng.choice(len(neg), min(40, len(neg)), replace=False)]
    for name in methods:  # warm-up: imports, OpenCV and Pillow initialisation
        m = METHODS[name]
        m.compare(m.fingerprint(dataset.DATA / sample[0].source), m.fingerprint(dataset.DATA / sample[0].target))
    times: dict[str, list[float]] = {name: [] for name in methods}
    sizes: dict[str, list[int]] = {name: [] for name in methods}
    # Methods are interleaved pair by pair (in a rotating order) so the load of other jobs on this shared
    # machine weighs on every method alike; the ratios between methods are the robust numbers.
    for k, p in enumerate(sample):
        for j in range(len(methods)):
            name = methods[(j + k) % len(methods)]
            m = METHODS[name]
            t0 = time.perf_counter()
            fa, fb = m.fingerprint(dataset.DATA / p.source), m.fingerprint(dataset.DATA / p.target)
            m.compare(fa, fb)
            times[name].append((time.perf_counter() - t0) * 1000.0)
            sizes[name] += [len(fa), len(fb)]
    return {name: {"pairs": len(sample), "median_ms": float(np.median(times[name])),
                   "p95_ms": float(np.percentile(times[name], 95)),
                   "fingerprint_bytes_mean": float(np.mean(sizes[name]))} for name in methods}


def machine() -> dict[str, str]:
    return {
        "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--timing-only", action="store_true", help="add a second timing pass to --out's results")
    args = ap.parse_args()
    methods = args.methods.split(",")
    pairs = dataset.build(args.seed)
    if args.timing_only:
        before = machine()
        timing_result = timing(pairs, methods)
        previous = json.loads(args.out.read_text())
        previous["timing_second_pass"] = {"machine_before": before, "timing": timing_result, "machine_after": machine()}
        args.out.write_text(json.dumps(previous, indent=1))
        print(json.dumps(previous["timing_second_pass"]), flush=True)
        return
    files = sorted({p.source for p in pairs} | {p.target for p in pairs})
    result: dict[str, object] = {"seed": args.seed, "machine_before": machine(), "files": len(files),
                                 "photos": len({p.source for p in pairs if p.label == 1}),
                                 "positives": sum(p.label for p in pairs), "methods": {}}
    sizes: dict[str, float] = {}
    with Pool(args.workers, initializer=_init) as pool:
        for name in methods:
            t0 = time.time()
            fps = fingerprints(name, files, args.seed, pool)
            sizes[name] = float(np.mean([len(fps[f]) for f in files]))
            s = scores(name, pairs, fps, pool)
            summary = summarise(pairs, name, s)
            summary["fingerprint_bytes_mean"] = sizes[name]
            summary["wall_s"] = time.time() - t0
            result["methods"][name] = summary  # type: ignore[index]
            np.save(CACHE / f"scores_{name}_seed{args.seed}.npy", s)
            print(name, json.dumps({k: v for k, v in summary.items() if k != "top_negatives"})[:3000], flush=True)
    if not args.no_timing:
        result["timing"] = timing(pairs, methods)
        print(json.dumps(result["timing"]), flush=True)
    result["machine_after"] = machine()
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
