"""Evidence on near-static footage: can a run that shows one picture be told apart from a shared card?

Usage: ``.venv/bin/python bench/video/near_static.py`` (after ``build.py``, ``negatives.py`` and
``fresh_negatives.py`` have built their clips). Prints one line per pair and writes
``bench/cache/video/near_static.json``. Nothing here is used by the matcher: the rule it measures was
*not* shipped (``bench/video/REPORT.md``, fourth pass).

The matcher keeps a run only when both sides show two different pictures (samples more than 24 bits
apart), which refuses shared title cards, fades and stills, and also the near-static ``tree.avi`` clips of
``t01_0_multi``. The rule tried here lets a one-picture run through when it is *pinned in time*: its
aligned samples are closer than the same samples ``LAG`` samples (1 s) off the diagonal. Per run, in bits:

- ``on``: the median distance of the aligned pairs;
- ``off``: the median over those samples of the smallest distance ``LAG`` samples off the diagonal, on
  either side and on either video, inside the run's spans (a measure of how much the content moves);
- ``contrast``: the median of ``off - on``.

The candidate rule, fixed on the development data (the ``tree.avi`` runs of the tuning split and the 36
"EPISODE ONE" card pairs of ``negatives.py``) before any fresh card was scored: ``contrast >= 2``,
``off >= 4`` and at least 3 s. On that data the tree runs have (on, off, contrast) = (2, 4, 2) and
(1, 7, 4) and the cards (0, 2.5-3, 2-3): the only separating cut has a 1-bit margin, in ``off``.

Runs are collected with ``min_run_distinct=1`` (so one-picture runs reach the output); a run is a
*candidate* when one of its sides shows fewer than 2 pictures.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import fresh_negatives  # noqa: E402
import negatives  # noqa: E402
from run import CACHE, DATA  # noqa: E402

from shared.kinds.video import KIND  # noqa: E402
from shared.kinds.video.compare import CHANGE_BITS  # noqa: E402
from shared.kinds.video.frames import FLIP_MASK, distinct_count  # noqa: E402
from shared.settings import Settings  # noqa: E402

LAG = 2
RULE = {"contrast": 2.0, "off": 4.0, "min_s": 3.0}


def _d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x ^ y).sum(axis=-1, dtype=np.int64)


def contrast(a: object, b: object, seg: object, flipped: bool) -> tuple[float, float, float] | None:
    """(on, off, contrast) medians of one segment, or None with fewer than 3 usable samples (the bench's
    fingerprints all start at grid index 0 and sample at the same rate)."""
    fps = a.sample_fps  # type: ignore[attr-defined]
    ha, va = a.hashes, a.informative  # type: ignore[attr-defined]
    hb = b.hashes ^ FLIP_MASK if flipped else b.hashes  # type: ignore[attr-defined]
    vb = b.informative  # type: ignore[attr-defined]
    s0, s1 = round(seg.source_start_s * fps), min(len(ha), round(seg.source_end_s * fps))  # type: ignore[attr-defined]
    t0, t1 = round(seg.target_start_s * fps), min(len(hb), round(seg.target_end_s * fps))  # type: ignore[attr-defined]
    k = t0 - s0
    i = np.arange(max(s0, t0 - k), min(s1, t1 - k))
    j = i + k
    keep = va[i] & vb[j]
    i, j = i[keep], j[keep]
    if i.size < 3:
        return None
    on = _d(ha[i], hb[j])
    big = np.iinfo(np.int64).max
    off = np.full(i.size, big, np.int64)
    for lag in (-LAG, LAG):
        jj, ii = j + lag, i + lag
        ok = (jj >= t0) & (jj < t1)
        ok[ok] &= vb[jj[ok]]
        off[ok] = np.minimum(off[ok], _d(ha[i[ok]], hb[jj[ok]]))
        ok = (ii >= s0) & (ii < s1)
        ok[ok] &= va[ii[ok]]
        off[ok] = np.minimum(off[ok], _d(ha[ii[ok]], hb[j[ok]]))
    has = off < big
    if has.sum() < 3:
        return None
    return float(np.median(on[has])), float(np.median(off[has])), float(np.median(off[has] - on[has]))


def pictures(fp: object, start_s: float, end_s: float) -> int:
    k0 = max(0, round(start_s * fp.sample_fps) - fp.start_index)  # type: ignore[attr-defined]
    k1 = max(k0, round(end_s * fp.sample_fps) - fp.start_index)  # type: ignore[attr-defined]
    return distinct_count(fp.hashes[k0:k1], fp.informative[k0:k1], CHANGE_BITS)  # type: ignore[attr-defined]


def main() -> None:
    base = Settings()
    loose = dataclasses.replace(base, video=dataclasses.replace(base.video, min_run_distinct=1))
    pairs_json = json.loads((DATA / "pairs.json").read_text())
    groups: dict[str, list[tuple[str, str]]] = {
        "tree (t01_0_multi, positive)": [
            (p["source"], p["target"])
            for p in pairs_json
            if p["target"].endswith("t01_0_multi.mkv") and p["kind"] == "positive"
        ],
        "hard negatives (black, still, 3 intros)": [
            (p["source"], p["target"]) for p in pairs_json if p["kind"] in ("black", "static", "shared_intro")
        ],
    }
    old = sorted(str(p) for p in (DATA / "negatives").glob("c_*.mp4"))
    groups["EPISODE ONE card pairs (negatives.py, development)"] = [
        (a, b) for n, a in enumerate(old) for b in old[n + 1 :]
    ]
    fresh_negatives.build()
    for prefix, name in (("cc_", "CHAPTER TWO"), ("cz_", "NOW SHOWING, zoom"), ("cg_", "PART THREE, grain")):
        files = sorted(str(p) for p in fresh_negatives.OUT.glob(prefix + "*.mp4"))
        groups[f"{name} card pairs (fresh)"] = [(a, b) for n, a in enumerate(files) for b in files[n + 1 :]]
    files = sorted({f for pairs in groups.values() for pair in pairs for f in pair})
    fps = negatives.fingerprints(files, base)
    out: dict[str, object] = {}
    for name, pairs in groups.items():
        candidates, accepted_pairs, shipped_matches = [], 0, 0
        for a, b in pairs:
            fa, fb = fps[a], fps[b]
            shipped = KIND.compare(fa, fb, base)
            shipped_matches += int(
                shipped.similarity_score >= base.video.match_threshold and bool(shipped.segments)
            )
            m = KIND.compare(fa, fb, loose)
            accepted = False
            for seg in m.segments:
                if (
                    min(
                        pictures(fa, seg.source_start_s, seg.source_end_s),
                        pictures(fb, seg.target_start_s, seg.target_end_s),
                    )
                    >= 2
                ):
                    continue
                c = contrast(fa, fb, seg, bool(m.details.get("flipped")))
                length = min(seg.source_end_s - seg.source_start_s, seg.target_end_s - seg.target_start_s)
                ok = (
                    c is not None
                    and c[2] >= RULE["contrast"]
                    and c[1] >= RULE["off"]
                    and length >= RULE["min_s"]
                )
                accepted |= ok
                candidates.append(
                    {
                        "a": Path(a).name,
                        "b": Path(b).name,
                        "on_off_contrast": c,
                        "seconds": round(length, 1),
                        "rule_accepts": ok,
                    }
                )
            accepted_pairs += int(accepted)
        out[name] = {
            "pairs": len(pairs),
            "matched_by_shipped_rule": shipped_matches,
            "one_picture_runs": len(candidates),
            "pairs_with_a_run_the_candidate_rule_accepts": accepted_pairs,
            "on_off_contrast_seen": sorted(
                {tuple(c["on_off_contrast"]) for c in candidates if c["on_off_contrast"]}
            ),
            "runs": candidates,
        }
        brief = {k: v for k, v in out[name].items() if k != "runs"}  # type: ignore[union-attr]
        print(name, json.dumps(brief))
    (CACHE / "near_static.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
