"""The video kind end to end on generated clips: decode, crop, hash, align, score, bytes, errors.

Clips are rendered from a timeline of pieces ``(seed, content_start_s, length_s)``: each seed is its own
"footage" (a scene change every 2 s, low-pass noise backgrounds, moving discs), rendered as a function of
content time so the same footage can be re-encoded at any frame rate, cut, reordered, letterboxed or flipped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, NoStream
from shared.kinds import get_kind
from shared.kinds.video import KIND, VideoFingerprint
from shared.protocol import LocalMedia, Match
from shared.settings import Settings, VideoSettings
from shared.sniff import sniff

W, H = 160, 120
SCENE_S = 2.0
SETTINGS = Settings()
THRESHOLD = SETTINGS.video.match_threshold


# -- clip generation ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _scene(seed: int, scene: int) -> tuple[np.ndarray, np.ndarray]:
    """Background (H, W, 3) and disc parameters of one scene of one footage."""
    rng = np.random.default_rng([seed, scene])
    coarse = rng.normal(0.0, 1.0, (H // 10, W // 10, 3)).astype(np.float32)
    bg = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    bg = np.clip(128 + 55 * bg / max(1e-6, float(bg.std())), 20, 235).astype(np.uint8)
    discs = rng.uniform(0, 1, (4, 8))  # x, y, vx, vy, radius, r, g, b
    return bg, discs


def render(seed: int, t: float) -> np.ndarray:
    """Footage ``seed`` at content time ``t``: an RGB frame."""
    scene = int(t // SCENE_S)
    bg, discs = _scene(seed, scene)
    frame = bg.copy()
    dt = t - scene * SCENE_S
    for x, y, vx, vy, r, cr, cg, cb in discs:
        cx = int((x * W + (vx - 0.5) * 40 * dt) % W)
        cy = int((y * H + (vy - 0.5) * 30 * dt) % H)
        color = (int(cr * 255), int(cg * 255), int(cb * 255))
        cv2.circle(frame, (cx, cy), int(6 + r * 14), color, -1, lineType=cv2.LINE_AA)
    return frame


def write_clip(
    path: Path,
    pieces: list[tuple[int, float, float]],
    *,
    fps: int = 25,
    codec: str = "libx264",
    transform=None,
    size: tuple[int, int] = (W, H),
) -> Path:
    """Encode the timeline ``pieces`` (``seed < 0`` renders black) into ``path``."""
    total = sum(length for _, _, length in pieces)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "23", "threads": "1"}
        for n in range(round(total * fps)):
            t = n / fps
            start = 0.0
            for seed, content_start, length in pieces:
                if t < start + length - 1e-9:
                    break
                start += length
            rgb = render(seed, content_start + t - start) if seed >= 0 else np.zeros((H, W, 3), np.uint8)
            if transform is not None:
                rgb = transform(rgb)
            if rgb.shape[:2] != (size[1], size[0]):
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        out.mux(stream.encode())
    return path


def media(path: Path) -> LocalMedia:
    data = path.read_bytes()
    return LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), sniff(data[:64]) or "")


def letterbox(rgb: np.ndarray) -> np.ndarray:
    """Squeeze the picture into 160x90 between 15-pixel black bars."""
    inner = cv2.resize(rgb, (W, 90), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(inner, 15, 15, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


CLIPS = {
    "source": dict(pieces=[(1, 0.0, 30.0)]),
    "reencode": dict(pieces=[(1, 0.0, 30.0)], codec="mpeg4", suffix=".avi"),
    "trim": dict(pieces=[(1, 10.0, 10.0)]),
    "embedded": dict(pieces=[(7, 0.0, 8.0), (1, 5.0, 10.0), (8, 0.0, 7.0)]),
    "reused": dict(pieces=[(9, 0.0, 4.0), (1, 20.0, 6.0), (10, 0.0, 4.0), (1, 3.0, 5.0), (11, 0.0, 3.0)]),
    "letterbox": dict(pieces=[(1, 0.0, 30.0)], transform=letterbox),
    "fps15": dict(pieces=[(1, 10.0, 10.0)], fps=15),
    "flip": dict(pieces=[(1, 0.0, 30.0)], transform=lambda rgb: rgb[:, ::-1]),
    "unrelated": dict(pieces=[(2, 0.0, 30.0)]),
    "unrelated_short": dict(pieces=[(3, 0.0, 12.0)]),
    "static": dict(pieces=[(4, 0.5, 10.0)], transform=lambda rgb: render(4, 0.5)),
    "black": dict(pieces=[(-1, 0.0, 10.0)]),
}


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="session")
def clip(clip_dir: Path):
    """``clip(name)`` -> (LocalMedia, VideoFingerprint), generated and fingerprinted once per session."""

    @functools.cache
    def get(name: str) -> tuple[LocalMedia, VideoFingerprint]:
        spec = dict(CLIPS[name])
        suffix = spec.pop("suffix", ".mp4")
        m = media(write_clip(clip_dir / f"{name}{suffix}", **spec))
        return m, KIND.fingerprint(m, SETTINGS)

    return get


def compare(clip, a: str, b: str) -> Match:
    return KIND.compare(clip(a)[1], clip(b)[1], SETTINGS)


def assert_segment(seg, source: tuple[float, float], target: tuple[float, float], tol: float = 0.5) -> None:
    got = (seg.source_start_s, seg.source_end_s, seg.target_start_s, seg.target_end_s)
    want = (*source, *target)
    assert np.allclose(got, want, atol=tol + 1e-6), f"segment {got} != {want}"
