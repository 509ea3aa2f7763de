"""Enlarged negative set: every pair of files in the benchmark that shares no footage, plus new negative clips.

Usage: ``.venv/bin/python bench/video/negatives.py [--peers]`` (after ``build.py``). New clips go to
``bench/data/video/negatives/``, fingerprints and results to ``bench/cache/video/`` (``negatives.json``).

Why: the listed negatives (50) and the cross pairs (630) cannot show an FPR of 1e-3; with zero false matches
out of n pairs, the 95% upper bound on the FPR is 1 - 0.05**(1/n) (about 3/n, the "rule of three"), so n must
exceed ~3,000. Pairs are not independent (every file is in many pairs), so the bound is optimistic; it is the
usual reading, and the report says so.

New clips, never used by a source, a distractor or a target (all real, shipped in Debian packages):

- real footage: pymecavideo's ``g1.avi``, ``g2.avi``, ``balle1-vp9.avi``; fillets-ng's ``intro.mpg``; ViSP's
  ``line`` tracking sequence (the same camera and target family as the ``cube``/``ellipse-1`` source,
  another time: a hard negative);
- slideshows over OpenCV sample photos that no source uses: two of the left-camera chessboard calibration
  series and two of the right-camera series (the same board, other poses: same photo series, different
  photos; left and right are kept to disjoint pose numbers so no stereo pair of one instant is split), and
  mixed sets (``pic1-6``, ``HappyFish``, ``cards``, ``sudoku``, text photos, ``box.png`` which appears
  inside the sourced ``box_in_scene``, ViSP's ``Klimt`` and ``Solvay``); Ren'Py demo backgrounds and its
  ``concert1-3`` series (three clips: same series, different photos); pymecavideo's help screenshots (one
  app's UI, two clips);
- shared title cards: nine of those clips again, each preceded by the same new 4 s card ("EPISODE ONE", a
  fade-in over a gradient); the 36 pairs among them share the intro and nothing else.

Left out on purpose, as they are *near-duplicates* of used material and so not honest negatives:
``carphone_distorted``, ``Megamind_bugy``, ``ela_modified``, ``leuvenB``, ``graf3``, ``aloeR``, the ``*2``
optical-flow frames, ``imageTextR``, and other renderings of the wallpapers.

Negatives: every unordered pair of files (sources, targets, distractors, new clips) whose footage roots are
disjoint: a source's root is itself, a target's roots are every file its timeline was cut from, a new clip's
root is its base clip. Title cards are not roots: sharing only a card must not match.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import peers  # noqa: E402
import sources  # noqa: E402
from run import CACHE, DATA, media, predict_ours  # noqa: E402

from shared.kinds.audio.fingerprint import AudioFingerprint  # noqa: E402
from shared.kinds.video import KIND  # noqa: E402
from shared.kinds.video.fingerprint import VideoFingerprint  # noqa: E402
from shared.matching import MatchOptions  # noqa: E402
from shared.settings import Settings  # noqa: E402

OUT = DATA / "negatives"
VISP = sources.VISP
OCV = sources.OCV
RENPY = Path("/usr/share/games/renpy/demo/game")
MECA_HELP = Path("/usr/share/pymecavideo/data/help")


def _photo_sets() -> dict[str, list[Path]]:
    def ocv(*names: str) -> list[Path]:
        return [OCV / n for n in names]

    return {
        "chessL1": ocv("left01.jpg", "left02.jpg", "left03.jpg", "left04.jpg"),
        "chessL2": ocv("left05.jpg", "left06.jpg", "left07.jpg"),
        "chessR1": ocv("right08.jpg", "right09.jpg", "right11.jpg"),
        "chessR2": ocv("right12.jpg", "right13.jpg", "right14.jpg"),
        "misc1": ocv("HappyFish.jpg", "blox.jpg", "cards.png", "chicky_512.png"),
        "misc2": ocv("pic1.png", "pic2.png", "pic3.png"),
        "misc3": ocv("pic4.png", "pic5.png", "pic6.png"),
        "misc4": ocv("sudoku.png", "notes.png", "text_defocus.jpg", "box.png"),
        "misc5": [
            OCV / "text_motion.jpg",
            OCV / "imageTextN.png",
            VISP / "Klimt/Klimt.png",
            VISP / "Solvay/Solvay_conference_1927_Version2_1280x881.png",
        ],
        "renpy_bg": [
            RENPY / "images/bg cave.jpg",
            RENPY / "images/bg washington.jpg",
            RENPY / "images/bg whitehouse.jpg",
            RENPY / "gui/main_menu.jpg",
        ],
        "concertA": [RENPY / "images/concert1.png", RENPY / "images/magic.png"],
        "concertB": [RENPY / "images/concert2.png"],
        "concertC": [RENPY / "images/concert3.png"],
        "meca_snapsA": [MECA_HELP / "snap1.png", MECA_HELP / "snap2.png"],
        "meca_snapB": [MECA_HELP / "snap3.png"],
    }


REAL = {
    "g1": ([str(sources.MECA / "g1.avi")], None),
    "g2": ([str(sources.MECA / "g2.avi")], None),
    "balle1": ([str(sources.MECA / "balle1-vp9.avi")], None),
    "fillets": (["/usr/share/games/fillets-ng/images/menu/intro.mpg"], None),
    "visp_line": ([str(VISP / "line/image.%04d.pgm")], [5.0]),
}
CARDED = ["chessL1", "chessR1", "misc2", "g1", "fillets", "visp_line", "renpy_bg", "concertA", "meca_snapsA"]


def _long_tracks(min_s: float = 60.0) -> list[str]:
    """Music tracks long enough for a clip (``-shortest`` would cut the video at a short jingle's end)."""
    out = []
    for t in sources.MUSIC:
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", t],
            capture_output=True,
            text=True,
            check=True,
        )
        if float(probe.stdout.strip() or 0) >= min_s:
            out.append(t)
    return out


def _card(out: Path) -> None:
    base = np.zeros((sources.H, sources.W, 3), np.uint8)
    base[:] = np.linspace(90, 20, sources.H, dtype=np.uint8)[:, None, None]
    cv2.putText(
        base, "EPISODE ONE", (150, 195), cv2.FONT_HERSHEY_TRIPLEX, 1.8, (250, 230, 200), 3, cv2.LINE_AA
    )
    frames = [(base * min(1.0, k / sources.FPS)).astype(np.uint8) for k in range(4 * sources.FPS)]
    sources._encode_frames(frames, _long_tracks()[0], out, 30.0)


def build() -> dict[str, set[str]]:
    """Write the new clips; return each new file with its footage roots."""
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / "tmp"
    tmp.mkdir(exist_ok=True)
    roots: dict[str, set[str]] = {}
    music = _long_tracks()
    for k, (name, pics) in enumerate(_photo_sets().items()):
        out = OUT / f"n_{name}.mp4"
        if not out.exists():
            sources.slideshow(
                pics, music[k % len(music)], out, 7000 + k, per_photo_s=max(5.0, 12.0 / len(pics))
            )
        roots[str(out)] = {name}
    for k, (name, (clips, rates)) in enumerate(REAL.items()):
        out = OUT / f"n_{name}.mp4"
        if not out.exists():
            sources._from_clips(clips, music[(k + 3) % len(music)], out, tmp, rates)
        roots[str(out)] = {name}
    card = OUT / "card_episode.mp4"
    if not card.exists():
        _card(card)
    for name in CARDED:
        out = OUT / f"c_{name}.mp4"
        if not out.exists():
            listing = tmp / f"c_{name}.txt"
            listing.write_text(f"file '{card}'\nfile '{OUT / f'n_{name}.mp4'}'\n")
            sources.run(
                ["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
                + [*sources.X264, "-c:a", "aac", "-b:a", "128k", str(out)]
            )
        roots[str(out)] = {name}
    return roots


def all_roots(new: dict[str, set[str]]) -> dict[str, set[str]]:
    pairs = json.loads((DATA / "pairs.json").read_text())
    src_dir = DATA / "sources"
    roots = {str(p): {str(p)} for p in sorted(src_dir.glob("*.mp4")) if p.name != "title_card.mp4"}
    for p in pairs:
        if p["kind"] == "positive":
            roots[p["target"]] = {piece[0] for piece in p["meta"]["pieces"]} - {
                str(src_dir / "title_card.mp4")
            }
    return {**roots, **new}


def fingerprints(files: list[str], settings: Settings) -> dict[str, object]:
    cache = CACHE / "fp"
    cache.mkdir(parents=True, exist_ok=True)
    # The stored form carries the soundtrack's audio fingerprint, so the key names both formats' versions.
    versions = f"v{VideoFingerprint.version}a{AudioFingerprint.version}"
    fps = {}
    for f in files:
        key = cache / (hashlib.sha256(Path(f).read_bytes()).hexdigest()[:24] + f"_{versions}.bin")
        if key.exists():
            fps[f] = KIND.fingerprint_from_bytes(key.read_bytes())
        else:
            fps[f] = KIND.fingerprint(media(f), settings)
            key.write_bytes(fps[f].to_bytes())
    return fps


def signature_false_matches(pairs: list[tuple[str, str]]) -> dict[str, object]:
    """FFmpeg's signature filter on ``pairs`` (one ffmpeg process per pair, cached in signature.json)."""
    cache = CACHE / "signature.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    for a, b in pairs:
        if a + "|" + b not in known:
            known[a + "|" + b] = peers.signature_match(a, b)
            cache.write_text(json.dumps(known))
    sfp = [(Path(a).name, Path(b).name) for a, b in pairs if known[a + "|" + b][0]]
    return {"pairs": len(pairs), "false_matches": len(sfp), "fp_pairs": sfp}


def upper_bound_95(false: int, n: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound on a rate (exact; 1 - 0.05**(1/n) when nothing is false)."""
    if false == 0:
        return 1.0 - 0.05 ** (1.0 / n)
    from scipy.stats import beta  # only needed when something matched

    return float(beta.ppf(0.95, false + 1, n - false))


def settings_with(overrides: list[str]) -> Settings:
    """Default settings with ``VideoSettings`` fields overridden from ``FIELD=VALUE`` strings."""
    base = Settings()
    changes: dict[str, object] = {}
    for item in overrides:
        key, value = item.split("=", 1)
        if not hasattr(base.video, key):
            raise SystemExit(f"unknown VideoSettings field {key}")
        current = getattr(base.video, key)
        changes[key] = (
            value.lower() in ("1", "true", "yes") if isinstance(current, bool) else type(current)(value)
        )
    return dataclasses.replace(base, video=dataclasses.replace(base.video, **changes))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", action="store_true", help="also vPDQ-style on every pair")
    ap.add_argument("--signature", action="store_true", help="also FFmpeg signature on the card-only pairs")
    ap.add_argument("--set", action="append", default=[], help="VideoSettings override, FIELD=VALUE")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    args = ap.parse_args()
    new = build()
    roots = all_roots(new)
    files = sorted(roots)
    negs = [(a, b) for a, b in itertools.combinations(files, 2) if not roots[a] & roots[b]]
    hard = [(a, b) for a, b in negs if Path(a).name.startswith("c_") and Path(b).name.startswith("c_")]
    print(f"{len(files)} files ({len(new)} new), {len(negs)} negative pairs ({len(hard)} share only a card)")
    settings = settings_with(args.set)
    t0 = time.perf_counter()
    fps = fingerprints(files, Settings())  # fingerprints do not depend on the compare settings
    t1 = time.perf_counter()
    rows = []
    for a, b in negs:
        matched, _, score, _ = predict_ours(fps[a], fps[b], settings, MatchOptions())
        rows.append((Path(a).name, Path(b).name, matched, round(score, 4)))
    t2 = time.perf_counter()
    fp = [r for r in rows if r[2]]
    report: dict[str, object] = {
        "files": len(files),
        "new_files": len(new),
        "negative_pairs": len(negs),
        "card_only_pairs": len(hard),
        "ours": {
            "false_matches": len(fp),
            "fpr": len(fp) / len(negs),
            "fpr_upper_95": upper_bound_95(len(fp), len(negs)),
            "max_score": max(r[3] for r in rows),
            "nonzero_scores": sum(r[3] > 0 for r in rows),
            "fp_pairs": fp,
            "fingerprint_s": round(t1 - t0, 1),
            "compare_s": round(t2 - t1, 1),
        },
    }
    new_scores = [
        r for r in rows if r[0] in {Path(x).name for x in new} or r[1] in {Path(x).name for x in new}
    ]
    report["ours"]["new_file_pairs"] = len(new_scores)  # type: ignore[index]
    if args.peers:
        hashes = {f: bits for f, (bits, _d) in peers.cached_vpdq_hashes(files, CACHE / "vpdq.json").items()}
        vfp = [(Path(a).name, Path(b).name) for a, b in negs if peers.vpdq_match(hashes[a], hashes[b])[0]]
        report["vpdq"] = {
            "false_matches": len(vfp),
            "fpr": len(vfp) / len(negs),
            "fpr_upper_95": upper_bound_95(len(vfp), len(negs)),
            "fp_pairs": vfp,
        }
    if args.signature:
        report["signature_card_only"] = signature_false_matches(hard)
    report["settings_overrides"] = args.set
    (CACHE / f"negatives{'_' + args.tag if args.tag else ''}.json").write_text(
        json.dumps({**report, "rows": rows}, indent=1)
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
