"""Tables for ``REPORT.md`` from the rows ``run.py`` wrote: recall, boundary errors, FPR, degenerate, speed.

Usage: ``.venv/bin/python bench/audio/report.py [eval|tune|fresh...|pooled [tag]]`` (``pooled``: every split's rows as one set). The Chromaprint threshold is calibrated on the
tuning rows (``tune_rows.json``): the smallest aligned-item count above every tuning negative of real audio
(degenerate signals are left out of the calibration, or silence-vs-silence alone would set it, and their
results are reported separately).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from run import boundary_errors, is_hit  # the definitions the benchmark scored with

CACHE = Path(__file__).resolve().parents[2] / "bench" / "cache" / "audio"
GROUPS = {
    "codecs, resampling, EQ": ["mp3_32k", "aac_64k", "opus_32k", "vorbis_q0", "flac", "wav", "resample_8k_mono", "eq_light", "telephone"],
    "noise at 10 dB SNR": ["noise_10db"],
    "pitch, tempo or speed +-5%": ["pitch_5", "tempo_5", "speed_5"],
    "pitch, tempo or speed +-10%": ["pitch_10", "tempo_10", "speed_10"],
}


def cp_threshold() -> int:
    """From the tuning rows; ``MEDIAMATCH_BENCH_CP_THRESHOLD`` gives it instead when they were not run on this
    machine (it has been 4 on every build of the set: REPORT.md, "How")."""
    if os.environ.get("MEDIAMATCH_BENCH_CP_THRESHOLD"):
        return int(os.environ["MEDIAMATCH_BENCH_CP_THRESHOLD"])
    tune = json.loads((CACHE / "tune_rows.json").read_text())["rows"]
    return 1 + max(r["cp_count"] for r in tune if r["kind"] not in ("positive", "degenerate"))


def cp_segments(r: dict) -> list[dict[str, float]]:
    s0, s1, t0, t1 = r["cp_segment"]
    return [{"source_start": s0, "source_end": s1, "target_start": t0, "target_end": t1}]


def hit(r: dict, segs: list[dict[str, float]]) -> bool:
    return is_hit(r, segs)


def errors(r: dict, segs: list[dict[str, float]]) -> list[float]:
    return boundary_errors(r, segs) or []


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}% ({n}/{d})" if d else "-"


def main() -> None:
    split = sys.argv[1] if len(sys.argv) > 1 else "eval"
    tag = sys.argv[2] if len(sys.argv) > 2 else ""
    if split == "pooled":  # every split run.py has written, as one set
        files = sorted(CACHE.glob(f"*_rows{tag}.json"))
        parts = [json.loads(f.read_text()) for f in files]
        data = {
            "rows": [r for d in parts for r in d["rows"]],
            "speed": {k: sum(d["speed"][k] for d in parts) for k in parts[0]["speed"]},
            "compare_s": [x for d in parts for x in d["compare_s"]],
            "cp_compare_s": [x for d in parts for x in d["cp_compare_s"]],
        }
        print(f"Pooled: {', '.join(f.name for f in files)}\n")
    else:
        data = json.loads((CACHE / f"{split}_rows{tag}.json").read_text())
    rows = data["rows"]
    thr = cp_threshold()
    pos = [r for r in rows if r["kind"] == "positive"]
    mm = {id(r): (r["mm_match"], r["mm_segments"]) for r in pos}
    cp = {id(r): (r["cp_count"] >= thr, cp_segments(r) if r["cp_count"] >= thr else []) for r in pos}
    print(f"Chromaprint threshold (from tuning split): {thr} aligned items\n")
    print("| Transform | Length | mediamatch recall | Chromaprint recall |\n|---|---|---|---|")
    cell: dict[tuple[str, float], list[list[int]]] = defaultdict(lambda: [[0, 0], [0, 0]])
    for r in pos:
        c = cell[(r["transform"], r["length_s"])]
        for k, res in enumerate((mm, cp)):
            ok, segs = res[id(r)]
            c[k][0] += int(ok and hit(r, segs))
            c[k][1] += 1
    for (t, length), c in sorted(cell.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        print(f"| {t} | {length:.0f} s | {pct(*c[0])} | {pct(*c[1])} |")
    print("\n| Group (targets) | Length | mediamatch | Chromaprint |\n|---|---|---|---|")
    for g, names in GROUPS.items():
        for length in (5.0, 10.0, 30.0):
            c = [[0, 0], [0, 0]]
            for name in names:
                if (name, length) in cell:
                    for k in range(2):
                        c[k][0] += cell[(name, length)][k][0]
                        c[k][1] += cell[(name, length)][k][1]
            if c[0][1]:
                print(f"| {g} | {length:.0f} s | {pct(*c[0])} | {pct(*c[1])} |")
    print("\nBoundary errors (|error| of the 4 boundaries of the segment that overlaps the truth most; all positives with such a segment)\n")
    print("| Method | Pairs with a segment | median | p95 | starts median | starts p95 |\n|---|---|---|---|---|---|")
    for name, res in (("mediamatch", mm), ("Chromaprint", cp)):
        errs = [errors(r, res[id(r)][1]) for r in pos if res[id(r)][0]]
        errs = [e for e in errs if e]
        flat = np.array([x for e in errs for x in e]) if errs else np.zeros(1)
        starts = np.array([x for e in errs for x in (e[0], e[2])]) if errs else np.zeros(1)
        print(
            f"| {name} | {len(errs)} | {np.median(flat):.3f} s | {np.percentile(flat, 95):.3f} s "
            f"| {np.median(starts):.3f} s | {np.percentile(starts, 95):.3f} s |"
        )
    scaled = [r for r in pos if r["mm_match"] and r.get("factor")]
    if scaled:
        print("\nEstimated factors on matched pitch/tempo/speed pairs (mediamatch): |time_scale - truth| median "
              f"{np.median([abs(r['mm_time_scale'] - r['time_scale']) for r in scaled]):.4f}")
    print("\n| Negatives | Pairs | mediamatch FP | Chromaprint FP |\n|---|---|---|---|")
    total = [0, 0, 0]
    for kind in ("neg_same_group", "neg_other_group", "neg_track_vs_track", "degenerate"):
        neg = [r for r in rows if r["kind"] == kind]
        fp_mm = sum(r["mm_match"] for r in neg)
        fp_cp = sum(r["cp_count"] >= thr for r in neg)
        total = [total[0] + len(neg), total[1] + fp_mm, total[2] + fp_cp]
        print(f"| {kind} | {len(neg)} | {fp_mm} | {fp_cp} |")
    print(f"| all | {total[0]} | {total[1]} (FPR {total[1] / max(total[0], 1):.1e}) | {total[2]} (FPR {total[2] / max(total[0], 1):.1e}) |")
    deg = [r for r in rows if r["kind"] == "degenerate"]
    print(f"\nDegenerate pairs: {len(deg)}; mediamatch max score {max(r['mm_score'] for r in deg):.4f}, "
          f"with any segment: {sum(bool(r['mm_segments']) for r in deg)}; Chromaprint max count {max(r['cp_count'] for r in deg)}")
    neg_all = [r for r in rows if r["kind"] != "positive"]
    print(f"Negatives: mediamatch max score {max(r['mm_score'] for r in neg_all):.4f}; "
          f"positives: mediamatch score median {np.median([r['mm_score'] for r in pos]):.3f}")
    sp = data["speed"]
    print(f"\nSpeed over {sp['audio_s'] / 60:.0f} min of audio: decode (mediamatch, PyAV to 8 kHz) {sp['audio_s'] / sp['decode_s']:.0f}x realtime; "
          f"fingerprint (decode excluded) {sp['audio_s'] / sp['fingerprint_s']:.0f}x realtime; fpcalc (decode included) "
          f"{sp['audio_s'] / max(sp['fpcalc_s'], 1e-9):.0f}x realtime (cached runs show 0)")
    print(f"Fingerprint size: {sp['bytes'] / (sp['audio_s'] / 60) / 1000:.1f} kB per minute (mean)")
    cs, ccs = np.array(data["compare_s"]), np.array(data["cp_compare_s"])
    print(f"Compare per pair: mediamatch median {1000 * np.median(cs):.1f} ms, p95 {1000 * np.percentile(cs, 95):.1f} ms; "
          f"Chromaprint median {1000 * np.median(ccs):.1f} ms, p95 {1000 * np.percentile(ccs, 95):.1f} ms")


if __name__ == "__main__":
    main()
