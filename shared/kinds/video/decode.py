"""Opening and sampling a local video with PyAV: only what the fingerprint needs, inside the limits.

Safety: FFmpeg sees a ``file:`` URL with ``protocol_whitelist=file``, so nothing inside the file can make it
open a network URL or another protocol; the demuxer is forced from the sniffed MIME type (no probing into a
playlist or concat list), and a container that still turns out to be one is refused.

Sampling: samples sit on the grid ``k / sample_fps`` of content time, measured from the first frame's
presentation time (``pts * time_base``), and each takes the frame *on screen* at that instant (the last frame
whose time is <= the grid time). That handles variable frame rates and rate changes, and two encodes of the
same content at different rates land on the same grid. Frames are reduced to small grayscale right away:
decoding is the cost (FIELD_NOTES, "Speed"), so everything after it works on at most 256 px.

Skipping: with ``VideoSettings.skip_nonref_frames`` the decoder drops frames nothing else refers to (B-frames in
typical H.264), about 1.8x faster on 720p; the others still arrive several times per sample step. When a
stream turns out too sparse that way (e.g. every non-key frame is disposable), ``TooSparse`` is raised early
and the caller decodes again without skipping.

Every PyAV error is translated here; this module raises only ``shared.errors`` types (and ``TooSparse``,
which never leaves the package).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import cv2
import numpy as np

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, NoStream
from shared.ffmpeg import open_local
from shared.protocol import LocalMedia, Progress
from shared.settings import VideoSettings

#: The longer side of the grayscale working frame.
WORK_SIDE = 256
#: With non-reference frames skipped, at least this many decoded frames per sample step are needed ...
MIN_FRAMES_PER_STEP = 3
#: ... judged over this much content time; otherwise decoding restarts without skipping.
SPARSE_CHECK_S = 10.0

#: Pixel formats whose first plane is 8-bit luma, read directly without a colour conversion.
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p", "yuv411p"}
    | {"yuv410p", "nv12", "nv21", "gray", "yuva420p"}
)


@contextmanager
def open_video(
    media: LocalMedia,
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open ``media`` safely and yield its container and first real video stream."""
    with open_local(Path(media.path), media.mime, "video") as container:
        stream = next(
            (s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)),
            None,
        )
        if stream is None:
            raise NoStream("the file has no video stream")
        yield container, stream


def header_duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """Duration from the container or stream header, without decoding; ``None`` when neither says."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's luma as a (height, width) uint8 array."""
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return frame.to_ndarray(format="gray")


def _working(frame: av.VideoFrame) -> np.ndarray:
    """Luma downscaled so the longer side is at most ``WORK_SIDE`` (area averaging, no aliasing)."""
    luma = _luma(frame)
    h, w = luma.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale >= 1.0:
        return luma.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA)


class TooSparse(Exception):
    """Skipping non-reference frames leaves too few frames; decode again without skipping."""


class Sampler:
    """Iterate ``(grid_index, working_frame)`` of an open stream; see the module docstring for the rules."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        settings: VideoSettings,
        progress: Progress,
        *,
        skip_nonref: bool = False,
    ) -> None:
        self.container, self.stream, self.settings, self.progress = container, stream, settings, progress
        self.skip_nonref = skip_nonref
        self.step_s = 1.0 / settings.sample_fps
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.frame_size = (stream.codec_context.width, stream.codec_context.height)
        self.duration_s = 0.0  # content time covered, known once iteration ends
        self.expected_s = header_duration_s(container, stream)

    def check_header(self) -> None:
        width, height = self.frame_size
        if width * height > self.settings.max_pixels_per_frame:
            raise MediaLimitExceeded(f"{width}x{height} frames exceed the pixel limit")
        if self.expected_s is not None and self.expected_s > self.settings.max_duration_s:
            raise MediaLimitExceeded(f"the video lasts {self.expected_s:.0f} s, over the limit")

    def _frames(self) -> Iterator[tuple[float, av.VideoFrame]]:
        """Decoded frames with their presentation time in seconds, monotone, PyAV errors translated."""
        self.stream.thread_type = "AUTO"
        if self.skip_nonref:
            self.stream.codec_context.skip_frame = "NONREF"
        last_t = -math.inf
        first_t, count, checked = math.inf, 0, not self.skip_nonref
        try:
            for frame in self.container.decode(self.stream):
                if frame.width * frame.height > self.settings.max_pixels_per_frame:
                    raise MediaLimitExceeded(f"{frame.width}x{frame.height} frames exceed the pixel limit")
                t = frame.time
                if t is None:
                    t = last_t + (1.0 / self.fps if self.fps else self.step_s) if last_t > -math.inf else 0.0
                t = max(float(t), last_t)
                last_t = t
                first_t, count = min(first_t, t), count + 1
                if not checked and t - first_t >= SPARSE_CHECK_S:
                    checked = True
                    self._check_density(count, t - first_t)
                yield t, frame
            if not checked and count > 1:
                self._check_density(count, last_t - first_t)
        except av.FFmpegError as exc:
            raise DecodeFailed(f"the video cannot be decoded: {exc}") from exc

    def _check_density(self, frames: int, span_s: float) -> None:
        if span_s >= 2 * self.step_s and frames < MIN_FRAMES_PER_STEP * span_s / self.step_s:
            raise TooSparse

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        origin: float | None = None
        shown: av.VideoFrame | None = None  # the frame on screen
        shown_small: np.ndarray | None = None
        shown_t = 0.0
        k = 0
        for t, frame in self._frames():
            if origin is None:
                origin = t
            t -= origin
            if t > self.settings.max_duration_s:
                raise MediaLimitExceeded("the video is longer than the duration limit")
            # Every grid time before this frame shows the previous frame.
            while shown is not None and k * self.step_s < t - 1e-6:
                if shown_small is None:
                    shown_small = _working(shown)
                yield k, shown_small
                k += 1
            shown, shown_small, shown_t = frame, None, t
            if self.expected_s:
                self.progress(min(0.99, t / self.expected_s))
        if shown is None:
            raise EmptyMedia("the video stream has no frames")
        frame_s = 1.0 / self.fps if self.fps > 0 else self.step_s
        self.duration_s = shown_t + frame_s
        while k * self.step_s < self.duration_s - 1e-6:
            if shown_small is None:
                shown_small = _working(shown)
            yield k, shown_small
            k += 1
