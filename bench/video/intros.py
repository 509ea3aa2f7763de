"""Held-out shared intros and outros: four new styles, each with six different clips (60 pairs that share
only the intro or outro).

Usage: ``.venv/bin/python bench/video/intros.py [--signature] [--set FIELD=VALUE ...]`` (after
``fresh_negatives.py``, whose clips are the bodies). Clips go to ``bench/data/video/intros/``, results to
``bench/cache/video/intros[_<tag>].json``.

Why: the intro/outro rule (``shared.kinds.video.compare``, ``_bookend``) was written after
``fresh_negatives.py``'s "NOW SHOWING" zoom card matched 28 of 28 card-only pairs. That set cannot also be
its test, so these were designed, in this file, before the rule was run on any of them. They vary what
the rule relies on and what it does not:

- ``sting``: a logo sting, 3 s: a white square turning 0 -> 90 degrees and growing on a navy background,
  a name fading in under it (motion all the way: every sample a different picture);
- ``montage``: a photo montage, 3 s: three ViSP pictures that no other video in the benchmark uses
  (``AprilTag``, ``circle``, ``mire``), 1 s each with cross-fades, a channel name over them (real content,
  hard cuts in picture);
- ``leadin``: 1 s of black, then a card zooming 1.0 -> 1.2 on a vignette for 4 s (the intro does not start
  at the first frame; the rule measures from each video's first informative sample);
- ``credits``: an *outro* after the clip: 9 s of text lines scrolling up over a dark gradient (long,
  lively, near the rule's 10 s length limit; where the clip before it is short, the credits are more
  than half the video and the rule does not apply: those pairs are counted, not hidden).

Bodies are ``fresh_negatives.py``'s clips (six per intro, no body twice within an intro); the intro-only
pairs share the intro and nothing else. The script reports, per intro, how many pairs match with the
shipped settings, and FFmpeg's ``signature`` filter on the same pairs with ``--signature``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fresh_negatives  # noqa: E402
import negatives  # noqa: E402
import sources  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "video" / "intros"
CACHE = negatives.CACHE
FPS = sources.FPS
BODIES = {
    "sting": ["mate_nat1", "ukui2", "sk_tex", "renpy_launchB", "meca_ui1", "kivy_city"],
    "montage": ["mate_nat2", "ukui3", "sk1", "renpy_menus", "fillets1", "castel"],
    "leadin": ["mate_nat3", "ukui1", "sk2", "meca_ui2", "fillets2", "castle_sim"],
    "credits": ["mate_abs", "kivy", "renpy_launchA", "meca_ui3", "sk_tex", "mate_nat1"],
}


def _navy() -> np.ndarray:
    base = np.zeros((sources.H, sources.W, 3), np.uint8)
    base[:] = (70, 30, 20)
    return base


def _sting() -> list[np.ndarray]:
    frames, n = [], 3 * FPS
    for k in range(n):
        f = _navy()
        t = k / (n - 1)
        side = 40 + 80 * t
        box = cv2.boxPoints(((sources.W / 2, sources.H / 2 - 30), (side, side), 90 * t))
        cv2.fillPoly(f, [box.astype(np.int32)], (255, 255, 255))
        alpha = min(1.0, max(0.0, (t - 0.3) / 0.4))
        text = f.copy()
        cv2.putText(
            text, "STUDIO NINE", (200, 300), cv2.FONT_HERSHEY_DUPLEX, 1.4, (255, 255, 255), 2, cv2.LINE_AA
        )
        frames.append(cv2.addWeighted(text, alpha, f, 1 - alpha, 0))
    return frames


def _montage() -> list[np.ndarray]:
    pics = [
        cv2.resize(cv2.imread(str(sources.VISP / name)), (sources.W, sources.H), interpolation=cv2.INTER_AREA)
        for name in ("AprilTag/AprilTag.pgm", "circle/circle.ppm", "mire/mire.jpg")
    ]
    frames = []
    for k in range(3 * FPS):
        pos = k / FPS
        i = min(int(pos), 2)
        f = pics[i]
        frac = pos - i
        if i < 2 and frac > 0.8:  # cross-fade over the last 0.2 s of each picture
            w = (frac - 0.8) / 0.2
            f = cv2.addWeighted(pics[i + 1], w, f, 1 - w, 0)
        f = f.copy()
        cv2.rectangle(f, (0, 290), (sources.W, 350), (0, 0, 0), -1)
        cv2.putText(f, "CHANNEL 7", (230, 333), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 200, 255), 3, cv2.LINE_AA)
        frames.append(f)
    return frames


def _leadin() -> list[np.ndarray]:
    yy, xx = np.mgrid[0 : sources.H, 0 : sources.W]
    r = np.hypot((xx - sources.W / 2) / sources.W, (yy - sources.H / 2) / sources.H)
    base = np.clip(180 - 260 * r, 0, 255).astype(np.uint8)
    card = cv2.merge([base // 2, base // 2, base])
    cv2.putText(
        card, "EPISODE 12", (170, 200), cv2.FONT_HERSHEY_TRIPLEX, 1.8, (240, 240, 240), 3, cv2.LINE_AA
    )
    frames = [np.zeros_like(card) for _ in range(FPS)]
    n = 4 * FPS
    for k in range(n):
        zoom = 1.0 + 0.2 * k / (n - 1)
        m = cv2.getRotationMatrix2D((sources.W / 2, sources.H / 2), 0.0, zoom)
        frames.append(cv2.warpAffine(card, m, (sources.W, sources.H), borderMode=cv2.BORDER_REFLECT))
    return frames


def _credits() -> list[np.ndarray]:
    lines = [
        "DIRECTED BY A. NOBODY",
        "PRODUCED BY THE COMMITTEE",
        "MUSIC: WESNOTH CONTRIBUTORS",
        "CAMERA: NOBODY",
        "EDITING: SOMEONE ELSE",
        "A MEDIAMATCH PRODUCTION",
        "WITH THANKS TO DEBIAN",
        "FILMED ON LOCATION",
        "ALL RIGHTS REVERSED",
        "NO ANIMALS WERE HARMED",
        "THE END",
    ]
    grad = np.linspace(10, 60, sources.H, dtype=np.uint8)[:, None].repeat(sources.W, axis=1)
    frames, n = [], 9 * FPS
    for k in range(n):
        f = cv2.merge([grad, grad // 2, grad // 3])
        y0 = sources.H - k * 3.2
        for i, line in enumerate(lines):
            y = int(y0 + i * 60)
            if 20 < y < sources.H + 20:
                cv2.putText(f, line, (90, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (230, 230, 230), 2, cv2.LINE_AA)
        frames.append(f)
    return frames


MAKERS = {"sting": _sting, "montage": _montage, "leadin": _leadin, "credits": _credits}


def build() -> dict[str, list[str]]:
    """Write the intros and outro and the clips with them; return the clips of each."""
    OUT.mkdir(parents=True, exist_ok=True)
    music = negatives._long_tracks()
    clips: dict[str, list[str]] = {}
    for k, (intro, make) in enumerate(MAKERS.items()):
        card = OUT / f"intro_{intro}.mp4"
        if not card.exists():
            sources._encode_frames(make(), music[k % len(music)], card, 20.0 + 7 * k)
        clips[intro] = []
        for body in BODIES[intro]:
            out = OUT / f"i_{intro}_{body}.mp4"
            if not out.exists():
                listing = OUT / f"{out.stem}.txt"
                parts = [card, fresh_negatives.OUT / f"f_{body}.mp4"]
                if intro == "credits":  # an outro
                    parts.reverse()
                listing.write_text("".join(f"file '{part}'\n" for part in parts))
                sources.run(
                    ["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
                    + [*sources.X264, "-c:a", "aac", "-b:a", "128k", str(out)]
                )
                listing.unlink()
            clips[intro].append(str(out))
    return clips


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--signature", action="store_true", help="also FFmpeg signature on every pair")
    ap.add_argument("--set", action="append", default=[], help="VideoSettings override, FIELD=VALUE")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    args = ap.parse_args()
    settings = negatives.settings_with(args.set)
    fresh_negatives.build()
    clips = build()
    fps = negatives.fingerprints(sorted({c for cs in clips.values() for c in cs}), settings)
    report: dict[str, object] = {"settings": args.set}
    all_pairs = []
    for intro, files in clips.items():
        pairs = list(itertools.combinations(files, 2))
        all_pairs += pairs
        rows = fresh_negatives.evaluate(pairs, fps, settings, with_rescue_tail=False)
        report[intro] = {"pairs": len(rows), "false_matches": sum(r["match"] for r in rows), "rows": rows}
        print(f"{intro}: {report[intro]['false_matches']} of {len(rows)} intro-only pairs match", flush=True)
    if args.signature:
        report["signature"] = negatives.signature_false_matches(all_pairs)
        print("signature:", report["signature"], flush=True)
    out = CACHE / f"intros{'_' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(report, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
