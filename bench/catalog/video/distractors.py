"""Distractor video fingerprints: pan-and-zoom over real photos, rendered and hashed in memory.

Decoding 50 hours of real video is out of reach on this machine, so most of the catalog is made of
fingerprints of "slideshows" that are never encoded: each distractor is a run of shots, one real photo per
shot (5-9 s, hard cuts), seen through a window of the working frame's aspect (16:9) that moves and zooms
between two random boxes (Ken Burns, as ``bench/video/sources.py`` does for its encoded slideshows). Every
sample on the 2 fps grid is rendered straight at the video kind's working size (``decode.WORK_SIDE`` = 256
pixels wide, grayscale) and hashed with the kind's own ``frames.frame_hash``; no encode, no decode, no
compression artefacts. The fingerprints are real ``VideoFingerprint`` values (no audio attachment).

The photos are the image benchmark's originals (``bench/data/image/orig``: Debian/PyPI sample photos) minus
every photo, stereo partner or tracking sequence that the video benchmark's sources are built from, so a
distractor never shares footage with a query. The same photos recur in many distractors under other pans
and zooms: near-duplicate frames across items, which is the hard case for an index (many chance pairs).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from shared.kinds.video.decode import WORK_SIDE
from shared.kinds.video.fingerprint import VideoFingerprint
from shared.kinds.video.frames import frame_hash

ORIG = Path(__file__).resolve().parents[2] / "data" / "image" / "orig"
OUT_W, OUT_H = WORK_SIDE, WORK_SIDE * 9 // 16
SAMPLE_FPS = 2.0
#: Photos the video benchmark's sources use (wallpapers, OpenCV samples and their stereo partners, ViSP sequences).
EXCLUDE_PREFIXES = (
    "aero aloe apple baboon basketball board building butterfly ela_original fruits graf home left leuven "
    "licenseplate messi orange pca_test rubberwhale smarties squirrel starry_night stuff blender_suzanne "
    "box_in_scene right mire cube mbt ellipse line"
).split()


def photo_paths() -> list[Path]:
    import glob

    walls = {Path(d).parts[4].lower() for d in glob.glob("/usr/share/wallpapers/*/contents/images")}
    out = []
    for p in sorted(ORIG.glob("*.jpg")):
        stem = p.stem.lower()
        if stem in walls or any(stem.startswith(x) for x in EXCLUDE_PREFIXES):
            continue
        out.append(p)
    return out


def load_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise RuntimeError(f"cannot read {path}")
    scale = min(1.0, 1024 / max(img.shape))  # plenty for a 256-pixel window zoomed in to 55%
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img


def _shot(img: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    ih, iw = img.shape
    full_w = min(iw, ih * OUT_W / OUT_H)

    def box() -> tuple[float, float, float]:
        bw = full_w * rng.uniform(0.55, 1.0)
        return rng.uniform(0, iw - bw), rng.uniform(0, max(ih - bw * OUT_H / OUT_W, 0.0)), bw

    (x0, y0, w0), (x1, y1, w1) = box(), box()
    hashes = []
    for k in range(n):
        a = k / max(1, n - 1)
        x, y, bw = x0 + a * (x1 - x0), y0 + a * (y1 - y0), w0 + a * (w1 - w0)
        m = np.array([[OUT_W / bw, 0, -x * OUT_W / bw], [0, OUT_W / bw, -y * OUT_W / bw]], np.float32)
        frame = cv2.warpAffine(img, m, (OUT_W, OUT_H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        hashes.append(frame_hash(frame)[0])
    return hashes


def distractor(photos: list[np.ndarray], duration_s: float, seed: int) -> VideoFingerprint:
    """One distractor of ``duration_s`` seconds (see the module docstring)."""
    rng = np.random.default_rng([seed, 7])
    n_total = int(duration_s * SAMPLE_FPS)
    rows: list[np.ndarray] = []
    while len(rows) < n_total:
        n = min(int(rng.uniform(5, 9) * SAMPLE_FPS), n_total - len(rows))
        rows += _shot(photos[int(rng.integers(len(photos)))], n, rng)
    return VideoFingerprint(np.stack(rows), duration_s=n_total / SAMPLE_FPS, fps=25.0, sample_fps=SAMPLE_FPS)
