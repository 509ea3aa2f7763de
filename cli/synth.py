"""Generated media for the demo and the tests: photo-like images, melodies, moving-shape clips.

Everything is seeded, so the same call gives the same bytes on every machine with the same libraries.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import soundfile as sf
from PIL import Image


def photo(seed: int, width: int = 480, height: int = 360) -> np.ndarray:
    """A smooth RGB image with structure at several scales (not white noise), uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((8, 1.0), (24, 0.5), (64, 0.25)):
        small = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
        img += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (np.ptp(img) + 1e-6) * 255
    for _ in range(6):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, center, int(rng.integers(10, min(width, height) // 4)), color, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_image(rgb: np.ndarray, path: Path, **params: object) -> Path:
    Image.fromarray(rgb).save(path, **params)
    return path


def melody(seed: int, seconds: float, rate_hz: int = 22050) -> np.ndarray:
    """Random notes with harmonics and attack/decay envelopes, float32 mono in [-1, 1]."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate_hz), np.float32)
    t0 = 0
    while t0 < len(out):
        dur = int(rng.uniform(0.12, 0.5) * rate_hz)
        freq = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        t = np.arange(dur) / rate_hz
        note = sum(np.sin(2 * np.pi * freq * h * t) / h for h in (1, 2, 3, 4))
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(2, 8))
        end = min(len(out), t0 + dur)
        out[t0:end] += (note * env)[: end - t0].astype(np.float32)
        t0 += int(dur * rng.uniform(0.6, 1.0))
    return (0.5 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def save_audio(samples: np.ndarray, path: Path, rate_hz: int = 22050) -> Path:
    sf.write(str(path), samples, rate_hz)
    return path


def clip_frames(seed: int, seconds: float, fps: int, width: int = 160, height: int = 120) -> list[np.ndarray]:
    """Moving blobs over a background that changes scene every 2 s; RGB uint8 frames."""
    rng = np.random.default_rng(seed)
    frames = []
    scene_len = 2 * fps
    blobs: list[tuple[float, float, float, float, int, tuple[int, int, int]]] = []
    bg = photo(seed, width, height)
    for i in range(int(seconds * fps)):
        if i % scene_len == 0:
            bg = photo(int(rng.integers(1 << 30)), width, height)
            blobs = [
                (rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-3, 3), rng.uniform(-3, 3),
                 int(rng.integers(6, 20)), tuple(int(c) for c in rng.integers(0, 256, 3)))
                for _ in range(4)
            ]
        frame = bg.copy()
        k = i % scene_len
        for x, y, dx, dy, r, color in blobs:
            cv2.circle(frame, (int(x + dx * k) % width, int(y + dy * k) % height), r, color, -1)
        frames.append(frame)
    return frames


def save_video(frames: list[np.ndarray], path: Path, fps: int, codec: str = "mpeg4") -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 800_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
