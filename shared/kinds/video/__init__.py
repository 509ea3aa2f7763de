"""The video media kind: sampled frame hashes, aligned in time into segments.

Pipeline: ``decode.Sampler`` yields small grayscale frames on a 2 fps grid of content time; the first
informative ones vote on black bars (``frames.choose_crop``), after which every frame is cropped and hashed
(``frames.frame_hash``, PDQ-like, 224 bits); ``compare`` aligns two fingerprints with ``shared.align``.

Module map: ``decode`` (PyAV, limits, sampling), ``frames`` (crop, hash), ``fingerprint`` (the value type and
its bytes), ``compare`` (alignment and score), ``soundtrack`` (``details.audio_similarity`` through the audio
kind's public ``KIND``). Imports PyAV and OpenCV, never Flask or Celery.
"""

from __future__ import annotations

import numpy as np

from shared.errors import InvalidRequest
from shared.kinds.video.compare import compare as _compare
from shared.kinds.video.decode import Sampler, TooSparse, header_duration_s, open_video
from shared.kinds.video.fingerprint import VideoFingerprint
from shared.kinds.video.frames import HASH_BYTES, Crop, choose_crop, frame_hash, measure_bars
from shared.kinds.video.soundtrack import fingerprint_audio
from shared.protocol import Fingerprint, LocalMedia, Match, Progress, no_progress
from shared.settings import Settings
from shared.sniff import VIDEO_MIMES

__all__ = ["KIND", "VideoFingerprint", "VideoKind"]

#: Bars are voted over this many informative samples, buffered before hashing starts ...
CROP_VOTES = 24
#: ... or over whatever informative samples the first this-many samples hold.
CROP_BUFFER = 120


class VideoKind:
    name = "video"

    def accepts(self, mime: str) -> bool:
        return mime in VIDEO_MIMES or mime == "audio/ogg"  # Ogg may carry Theora

    def probe_duration_s(self, media: LocalMedia, settings: Settings) -> float | None:
        with open_video(media) as (container, stream):
            return header_duration_s(container, stream)

    def fingerprint(
        self, media: LocalMedia, settings: Settings, progress: Progress = no_progress
    ) -> VideoFingerprint:
        visual: Progress = lambda f: progress(0.95 * f)  # noqa: E731
        try:
            sampler, hasher = _sample_and_hash(
                media, settings, visual, skip_nonref=settings.video.skip_nonref_frames
            )
        except TooSparse:
            sampler, hasher = _sample_and_hash(media, settings, visual, skip_nonref=False)
        audio = fingerprint_audio(media, settings, lambda f: progress(0.95 + 0.05 * f))
        progress(1.0)
        width, height = sampler.frame_size
        h, w = hasher.shape
        src_crop = hasher.crop.scaled(width / w, height / h) if h and w else Crop()
        return VideoFingerprint(
            hashes=np.stack(hasher.hashes) if hasher.hashes else np.zeros((0, HASH_BYTES), np.uint8),
            duration_s=sampler.duration_s,
            fps=sampler.fps,
            sample_fps=settings.video.sample_fps,
            start_index=hasher.start_index,
            frame_size=(width, height),
            crop=(src_crop.top, src_crop.bottom, src_crop.left, src_crop.right),
            audio=audio,
        )

    def compare(self, a: Fingerprint, b: Fingerprint, settings: Settings) -> Match:
        if not isinstance(a, VideoFingerprint) or not isinstance(b, VideoFingerprint):
            raise InvalidRequest("the video kind compares video fingerprints only")
        return _compare(a, b, settings)

    def fingerprint_from_bytes(self, data: bytes) -> VideoFingerprint:
        return VideoFingerprint.from_bytes(data)


def _sample_and_hash(
    media: LocalMedia, settings: Settings, progress: Progress, *, skip_nonref: bool
) -> tuple[Sampler, _CroppingHasher]:
    with open_video(media) as (container, stream):
        sampler = Sampler(container, stream, settings.video, progress, skip_nonref=skip_nonref)
        sampler.check_header()
        hasher = _CroppingHasher()
        for k, small in sampler:
            hasher.add(k, small)
        hasher.finish()
    return sampler, hasher


class _CroppingHasher:
    """Buffer the first samples until the black bars are voted, then crop and hash every sample."""

    def __init__(self) -> None:
        self.crop = Crop()
        self.shape: tuple[int, int] = (0, 0)
        self.decided = False
        self.start_index = 0
        self.hashes: list[np.ndarray] = []
        self._votes: list[Crop] = []
        self._buffer: list[tuple[int, np.ndarray]] = []
        self._last_frame: np.ndarray | None = None
        self._last_hash = np.zeros(HASH_BYTES, np.uint8)

    def add(self, index: int, frame: np.ndarray) -> None:
        if self.decided:
            self._hash(index, frame)
            return
        self._buffer.append((index, frame))
        bars = measure_bars(frame)
        if bars is not None:
            self._votes.append(bars)
        if len(self._votes) >= CROP_VOTES or len(self._buffer) >= CROP_BUFFER:
            self.finish()

    def finish(self) -> None:
        if self.decided:
            return
        self.decided = True
        if self._buffer:
            first = self._buffer[0][1]
            self.shape = (first.shape[0], first.shape[1])
            self.crop = choose_crop(self._votes, *self.shape)
        for index, frame in self._buffer:
            self._hash(index, frame)
        self._buffer = []

    def _hash(self, index: int, frame: np.ndarray) -> None:
        if not self.hashes:
            self.start_index = index
        if index != self.start_index + len(self.hashes):
            raise AssertionError("samples must arrive on consecutive grid slots")
        if frame is not self._last_frame:  # one decoded frame may fill several grid slots
            self._last_frame = frame
            crop = self.crop
            if frame.shape[:2] != self.shape:  # the resolution changed mid-stream
                crop = crop.scaled(frame.shape[1] / self.shape[1], frame.shape[0] / self.shape[0])
            cropped = crop.apply(frame)
            self._last_hash, _ = frame_hash(cropped if cropped.size else frame)
        self.hashes.append(self._last_hash)


KIND = VideoKind()
