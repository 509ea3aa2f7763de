"""Render the tables of ``bench/image/REPORT.md`` from a ``run.py`` result file and its cached scores.

Usage: ``.venv/bin/python -m bench.image.report bench/image/results_seed0.json`` prints Markdown; the prose
around the tables in REPORT.md is written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.image import dataset, transforms
from bench.image.run import CACHE, threshold_at_fpr
from shared.settings import Settings

ORDER = ("mediamatch", "pdq", "phash", "orb_ransac")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def family_table(res: dict[str, Any], key: str) -> list[str]:
    methods = [m for m in ORDER if m in res["methods"]]
    lines = ["| family (target) | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    fams: dict[str, list[str]] = {}
    for name in transforms.NAMES:
        fams.setdefault(transforms.family(name), []).append(name)
    for fam, names in fams.items():
        cells, n = [], 0
        for m in methods:
            per = res["methods"][m]["per_transform"]
            n = sum(per[t]["n"] for t in names)
            cells.append(_pct(sum(per[t][key] * per[t]["n"] for t in names) / n))
        target = transforms.TARGETS.get(fam)
        label = f"{fam} (≥ {_pct(target)}%)" if target else f"{fam} (none)"
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return lines


def ordinary_table(res: dict[str, Any]) -> list[str]:
    """Family recall at FPR 1e-4 set on the negatives without same-scene pairs (sequence, series, stereo)."""
    pairs = dataset.build(res["seed"])
    labels = np.array([p.label for p in pairs])
    tags = np.array([p.tag for p in pairs])
    neg = (labels == 0) & ~np.isin(tags, ["sequence", "series", "stereo"])
    methods = [m for m in ORDER if m in res["methods"]]
    fams: dict[str, list[str]] = {}
    for name in transforms.NAMES:
        fams.setdefault(transforms.family(name), []).append(name)
    scores = {m: np.load(CACHE / f"scores_{m}_seed{res['seed']}.npy") for m in methods}
    cuts = {m: threshold_at_fpr(scores[m][neg], 1e-4) for m in methods}
    lines = ["| family | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for fam, names in fams.items():
        sel = (labels == 1) & np.isin(tags, names)
        cells = [_pct(float((scores[m][sel] > cuts[m]).mean())) for m in methods]
        lines.append(f"| {fam} | {int(sel.sum())} | " + " | ".join(cells) + " |")
    lines.append(f"| (score to exceed) | {int(neg.sum())} negatives | " + " | ".join(f"{cuts[m]:g}" for m in methods) + " |")
    return lines


def transform_table(res: dict[str, Any]) -> list[str]:
    methods = [m for m in ORDER if m in res["methods"]]
    head = " | ".join(f"{m} default | {m} @1e-4" for m in methods)
    lines = [f"| transform | family | {head} |", "|---|---|" + "---|---|" * len(methods)]
    for name in transforms.NAMES:
        cells = []
        for m in methods:
            per = res["methods"][m]["per_transform"][name]
            cells += [_pct(per["recall_default"]), _pct(per["recall_at_fpr"])]
        lines.append(f"| {name} | {transforms.family(name)} | " + " | ".join(cells) + " |")
    return lines


def negatives_table(res: dict[str, Any]) -> list[str]:
    methods = [m for m in ORDER if m in res["methods"]]
    tags = sorted(res["methods"][methods[0]]["per_negative_tag"])
    lines = ["| negatives | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for tag in tags:
        n = res["methods"][methods[0]]["per_negative_tag"][tag]["n"]
        cells = [str(res["methods"][m]["per_negative_tag"][tag]["false_matches"]) for m in methods]
        lines.append(f"| {tag} | {n} | " + " | ".join(cells) + " |")
    total = [f"{res['methods'][m]['false_matches_default']} ({res['methods'][m]['fpr_default']:.2e})" for m in methods]
    lines.append(f"| **all** | {res['methods'][methods[0]]['negatives']} | " + " | ".join(total) + " |")
    no_seq = []
    for m in methods:
        per = res["methods"][m]["per_negative_tag"]
        n = sum(v["n"] for k, v in per.items() if k != "sequence")
        fm = sum(v["false_matches"] for k, v in per.items() if k != "sequence")
        no_seq.append(f"{fm} ({fm / n:.2e})")
    n_no_seq = sum(v["n"] for k, v in res["methods"][methods[0]]["per_negative_tag"].items() if k != "sequence")
    lines.append(f"| all but sequence | {n_no_seq} | " + " | ".join(no_seq) + " |")
    return lines


def speed_table(res: dict[str, Any]) -> list[str]:
    methods = [m for m in ORDER if m in res.get("timing", {})]
    lines = ["| method | threshold | pairs | median ms/pair | p95 ms/pair | vs mediamatch (median) | fingerprint bytes (mean over the set) |",
             "|---|---|---|---|---|---|---|"]
    base = res["timing"]["mediamatch"]["median_ms"]
    for m in methods:
        t = res["timing"][m]
        lines.append(f"| {m} | {res['methods'][m]['threshold']} | {t['pairs']} | {t['median_ms']:.1f} | {t['p95_ms']:.1f} | "
                     f"{t['median_ms'] / base:.2f}x | {res['methods'][m]['fingerprint_bytes_mean']:.0f} |")
    return lines


def confidence_table(seed: int) -> list[str]:
    """What each confidence level of ours stands for on this set (scores from the cache)."""
    image = Settings().image
    pairs = dataset.build(seed)
    s = np.load(CACHE / f"scores_mediamatch_seed{seed}.npy")
    labels = np.array([p.label for p in pairs])
    tags = np.array([p.tag for p in pairs])
    neg, pos = s[labels == 0], s[labels == 1]
    ordinary = s[(labels == 0) & ~np.isin(tags, ["sequence", "series", "stereo"])]
    rows = [("high (match)", s >= image.high_score), ("medium", (s > image.low_score) & (s < image.high_score)),
            ("high (no match)", s <= image.low_score)]
    lines = ["| score band | negatives in band | FPR (all negatives) | ordinary negatives in band | positives in band |",
             "|---|---|---|---|---|"]
    for label, mask in rows:
        mn, mp = mask[labels == 0], mask[labels == 1]
        mo = mask[(labels == 0) & ~np.isin(tags, ["sequence", "series", "stereo"])]
        lines.append(f"| {label} | {int(mn.sum())} | {mn.mean():.2e} | {int(mo.sum())} of {len(ordinary)} | "
                     f"{int(mp.sum())} of {len(pos)} |")
    cut = threshold_at_fpr(neg, 1e-4)
    lines.append("")
    lines.append(f"Score a match must exceed for FPR 1e-4 on all negatives: {cut:.4f}; "
                 f"excluding `sequence`: {threshold_at_fpr(s[(labels == 0) & (tags != 'sequence')], 1e-4):.4f}.")
    return lines


def main() -> None:
    path = Path(sys.argv[1])
    res = json.loads(path.read_text())
    out = ["## Recall per family at each method's default threshold (%)", "", *family_table(res, "recall_default"),
           "", "## Recall per family at the score threshold giving FPR 1e-4 on all negatives (%)", "",
           *family_table(res, "recall_at_fpr"),
           "", "## Same, with the 1e-4 threshold set on the negatives without `sequence` frames (%)", "",
           *family_table(res, "recall_at_fpr_no_seq"),
           "", "## Same, with the 1e-4 threshold set on the ordinary negatives (no sequence, series, stereo) (%)",
           "", *ordinary_table(res),
           "", "## Per transform (%)", "", *transform_table(res),
           "", "## False matches at the default threshold, per negative kind", "", *negatives_table(res),
           "", "## Speed and size", "", *(speed_table(res) if "timing" in res else ["(no timing pass)"]),
           "", "## Confidence levels of mediamatch on this set", "", *confidence_table(res["seed"])]
    print("\n".join(out))


if __name__ == "__main__":
    main()
