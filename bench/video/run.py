"""Run this project and the two peers over ``bench/data/video/pairs.json`` and print the accuracy report.

Usage: ``.venv/bin/python bench/video/run.py [--split tune|eval|all]`` (after ``build.py``). Results go to
``bench/cache/video/results_<split>.json``; peer outputs are cached there too (they do not change between runs).

Split: the sources are split by a seeded shuffle (seed 11) into 4 tuning sources and 11 evaluation sources.
Any threshold chosen while developing was looked at on the tuning split only; the report quotes the
evaluation split (hard negatives, which belong to no source, are in both).

Metrics: pair recall and FPR on the listed pairs (each positive has one negative); FPR also over every
(source, target of another source) cross pair, for the methods whose compare is cheap; VCSL segment P/R/F
(``vcsl_metric``); boundary errors of matched truth segments; recall of truth segments by length.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import peers  # noqa: E402
import vcsl_metric  # noqa: E402

from shared.kinds.video import KIND  # noqa: E402
from shared.matching import MatchOptions  # noqa: E402
from shared.protocol import LocalMedia  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.sniff import sniff  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "video"
CACHE = Path(__file__).resolve().parents[1] / "cache" / "video"


def split_of(pair: dict, sources: list[str]) -> str:
    order = sorted(sources)
    random.Random(11).shuffle(order)
    tune = set(order[:4])
    if pair["kind"] in ("black", "static", "shared_intro"):
        return "hard"
    owner = pair["meta"]["source"]
    return "tune" if owner in tune else "eval"


def media(path: str) -> LocalMedia:
    data = Path(path).read_bytes()
    return LocalMedia(Path(path), len(data), hashlib.sha256(data).hexdigest(), sniff(data[:4096]))


def ours(files: list[str], settings: Settings) -> dict[str, object]:
    fps, t_total, d_total = {}, 0.0, 0.0
    for f in files:
        t0 = time.perf_counter()
        fps[f] = KIND.fingerprint(media(f), settings)
        t_total += time.perf_counter() - t0
        d_total += fps[f].duration_s
    print(f"ours: fingerprinted {len(files)} files, {d_total:.0f} s of video in {t_total:.1f} s")
    return fps


def predict_ours(
    fa: object, fb: object, settings: Settings, options: MatchOptions
) -> tuple[bool, list, float, object]:
    m = KIND.compare(fa, fb, settings)
    min_seg = settings.video.min_segment_s
    segs = [s for s in m.segments if s.duration_s >= min_seg]
    matched = m.similarity_score >= settings.video.match_threshold and bool(segs)
    boxes = (
        [[s.source_start_s, s.target_start_s, s.source_end_s, s.target_end_s] for s in segs]
        if matched
        else []
    )
    return matched, boxes, m.similarity_score, m.details.get("audio_similarity")


def boundary_errors(pred: list, truth: list) -> list[float]:
    """For each truth box, the best-overlapping predicted box: |error| of its 4 boundaries."""
    errs = []
    for g in truth:
        best, best_ov = None, 0.0
        for p in pred:
            ov = max(0.0, min(p[2], g[2]) - max(p[0], g[0])) * max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
            if ov > best_ov:
                best, best_ov = p, ov
        if best is not None:
            errs += [abs(best[k] - g[k]) for k in range(4)]
    return errs


def found(pred: list, g: list) -> bool:
    """A truth box is found when one predicted box covers at least half of it on both axes."""
    for p in pred:
        ox = max(0.0, min(p[2], g[2]) - max(p[0], g[0])) / (g[2] - g[0])
        oy = max(0.0, min(p[3], g[3]) - max(p[1], g[1])) / (g[3] - g[1])
        if ox >= 0.5 and oy >= 0.5:
            return True
    return False


def summarise(name: str, rows: list[dict]) -> dict:
    pos = [r for r in rows if r["truth"]]
    neg = [r for r in rows if not r["truth"]]
    recall = sum(r["match"] for r in pos) / max(1, len(pos))
    fpr = sum(r["match"] for r in neg) / max(1, len(neg))
    p, r, f = vcsl_metric.f_score([(x["boxes"], x["truth"]) for x in rows])
    pos_p, pos_r, pos_f = vcsl_metric.f_score([(x["boxes"], x["truth"]) for x in pos])
    errs = [e for x in pos for e in boundary_errors(x["boxes"], x["truth"])]
    by_len: dict[str, list[bool]] = {}
    for x in pos:
        for g in x["truth"]:
            length = g[2] - g[0]
            key = "3-5 s" if length < 5 else "5-10 s" if length < 10 else ">= 10 s"
            by_len.setdefault(key, []).append(found(x["boxes"], g))
    split = sum(
        1
        for x in pos
        for g in x["truth"]
        if sum(
            1 for p in x["boxes"] if min(p[2], g[2]) > max(p[0], g[0]) and min(p[3], g[3]) > max(p[1], g[1])
        )
        > 1
    )
    out = {
        "truth_segments_split": split,
        "method": name,
        "positives": len(pos),
        "negatives": len(neg),
        "recall": recall,
        "fpr": fpr,
        "fp_pairs": [(x["source"], x["target"]) for x in neg if x["match"]],
        "fn_pairs": [x["target"] for x in pos if not x["match"]],
        "vcsl_p": p,
        "vcsl_r": r,
        "vcsl_f": f,
        "vcsl_f_positives_only": pos_f,
        "vcsl_p_positives_only": pos_p,
        "vcsl_r_positives_only": pos_r,
        "boundary_median_s": statistics.median(errs) if errs else None,
        "boundary_p90_s": float(np.percentile(errs, 90)) if errs else None,
        "segments_found": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_len.items())},
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="eval", choices=["tune", "eval", "all"])
    ap.add_argument("--methods", default="ours,vpdq,signature")
    ap.add_argument("--set", action="append", default=[], help="VideoSettings override, FIELD=VALUE")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    args = ap.parse_args()
    methods = args.methods.split(",")
    pairs = json.loads((DATA / "pairs.json").read_text())
    sources = sorted({p["meta"]["source"] for p in pairs if "meta" in p})
    pairs = [p for p in pairs if split_of(p, sources) in (args.split, "hard") or args.split == "all"]
    files = sorted({p["source"] for p in pairs} | {p["target"] for p in pairs})
    from negatives import settings_with  # a sibling script; imported here, as it imports this one

    settings = settings_with(args.set)
    CACHE.mkdir(parents=True, exist_ok=True)
    report = {}
    if "ours" in methods:
        fps = ours(files, settings)
        rows = []
        for p in pairs:
            matched, boxes, score, audio = predict_ours(
                fps[p["source"]], fps[p["target"]], settings, MatchOptions()
            )
            rows.append({**p, "match": matched, "boxes": boxes, "score": score, "audio": audio})
        report["ours"] = summarise("ours", rows)
        audio_by: dict[str, list] = {}
        for r in rows:
            key = r["kind"] + ("/" + r["meta"]["audio"] if "meta" in r else "")
            audio_by.setdefault(key, []).append(r["audio"])
        report["ours"]["audio_similarity"] = {
            k: {
                "n": len(v),
                "null": sum(x is None for x in v),
                "median": statistics.median([x for x in v if x is not None])
                if any(x is not None for x in v)
                else None,
            }
            for k, v in sorted(audio_by.items())
        }
        sizes = [
            (len(fp.to_bytes()) - len(fp.audio), len(fp.to_bytes()), fp.duration_s) for fp in fps.values()
        ]
        report["ours"]["bytes_per_s_visual"] = {
            "max": max(v / d for v, _, d in sizes),
            "median": statistics.median(v / d for v, _, d in sizes),
            "overall": sum(v for v, _, _ in sizes) / sum(d for _, _, d in sizes),
        }
        report["ours"]["bytes_per_s_with_audio_overall"] = sum(t for _, t, _ in sizes) / sum(
            d for _, _, d in sizes
        )
        targets = [p for p in pairs if p["kind"] == "positive"]
        cross = [
            predict_ours(fps[s], fps[t["target"]], settings, MatchOptions())[0]
            for t in targets
            for s in sources
            if s != t["meta"]["source"] and s in fps
        ]
        report["ours"]["cross_negatives"] = f"{sum(cross)}/{len(cross)}"
        report["ours"]["scores"] = [
            (Path(r["target"]).name, r["kind"], round(r["score"], 3), r["match"]) for r in rows
        ]
    if "vpdq" in methods:
        # One frame (0.04 s at 25 fps) is added to each duration, as the committed numbers were computed.
        hashes = {
            f: (bits, d + 0.04)
            for f, (bits, d) in peers.cached_vpdq_hashes(files, CACHE / "vpdq.json").items()
        }
        rows = []
        for p in pairs:
            (ha, da), (hb, db) = hashes[p["source"]], hashes[p["target"]]
            matched = peers.vpdq_match(ha, hb)[0]
            rows.append({**p, "match": matched, "boxes": [[0.0, 0.0, da, db]] if matched else []})
        report["vpdq"] = summarise("vpdq", rows)
        targets = [p for p in pairs if p["kind"] == "positive"]
        cross = [
            peers.vpdq_match(hashes[s][0], hashes[t["target"]][0])[0]
            for t in targets
            for s in sources
            if s != t["meta"]["source"] and s in hashes
        ]
        report["vpdq"]["cross_negatives"] = f"{sum(cross)}/{len(cross)}"
    if "signature" in methods:
        cache = CACHE / "signature.json"
        known = json.loads(cache.read_text()) if cache.exists() else {}
        rows = []
        for p in pairs:
            key = p["source"] + "|" + p["target"]
            if key not in known:
                known[key] = peers.signature_match(p["source"], p["target"])
                cache.write_text(json.dumps(known))
            matched, boxes = known[key]
            rows.append({**p, "match": matched, "boxes": boxes})
        report["signature"] = summarise("signature", rows)
    (CACHE / f"results_{args.split}{'_' + args.tag if args.tag else ''}.json").write_text(
        json.dumps(report, indent=1)
    )
    for r in report.values():
        brief = {k: v for k, v in r.items() if k not in ("scores", "fp_pairs", "fn_pairs")}
        print(json.dumps(brief))
        print(
            "  FN:",
            [Path(x).name for x in r["fn_pairs"]],
            " FP:",
            [(Path(a).name, Path(b).name) for a, b in r["fp_pairs"]],
        )


if __name__ == "__main__":
    main()
