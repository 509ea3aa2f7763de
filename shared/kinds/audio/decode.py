"""Streamed, sandboxed audio decoding with PyAV: a local file in, mono float32 blocks at 8000 Hz out.

The file is never loaded whole at its native rate: packets are demuxed one by one, each decoded frame is
resampled on the fly (``av.AudioResampler``) and handed on in blocks of a few seconds. FFmpeg may only use the
``file`` protocol, the demuxer is forced from the sniffed MIME type when it is known, and playlist or concat
demuxers are refused, so an input can never make FFmpeg open further files or URLs.

Every PyAV error is translated here into a ``shared.errors`` type. This module imports nothing from Flask
or Celery.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, NoStream
from shared.ffmpeg import open_local
from shared.protocol import Progress, no_progress

#: Everything downstream works at this rate: peaks are only looked for at 200 Hz - 3.8 kHz.
SAMPLE_RATE_HZ = 8000
#: Samples handed on per block (4 s): keeps memory flat whatever the input length.
BLOCK_SAMPLES = 4 * SAMPLE_RATE_HZ
#: A few corrupt packets are skipped (real files have glitches); more than this fails the decode.
_MAX_BAD_PACKETS = 32


def open_container(path: Path, mime: str | None = None) -> AbstractContextManager[Any]:
    """Open ``path`` for reading with FFmpeg restricted to local files; refuse playlists."""
    return open_local(path, mime, "audio")


def container_duration_s(container: Any) -> float | None:
    """Duration from the header: the container's, else the first audio stream's; ``None`` if unknown."""
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    for stream in container.streams.audio:
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return float(stream.duration * stream.time_base)
    return None


def probe_duration_s(path: Path, mime: str | None = None) -> float | None:
    """Cheap duration from the container header only; nothing is decoded."""
    with open_container(path, mime) as container:
        if not container.streams.audio:
            raise NoStream("the file has no audio stream")
        return container_duration_s(container)


def iter_samples(
    path: Path,
    mime: str | None,
    max_duration_s: float,
    progress: Progress = no_progress,
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks at ``SAMPLE_RATE_HZ`` (``BLOCK_SAMPLES`` long, the last one shorter).

    Raises ``NoStream`` without an audio stream, ``MediaLimitExceeded`` past ``max_duration_s`` (from the
    header when it is known, else while decoding), ``EmptyMedia`` when nothing decodes, ``DecodeFailed``
    on corrupt input.
    """
    max_samples = int(max_duration_s * SAMPLE_RATE_HZ)
    with open_container(path, mime) as container:
        if not container.streams.audio:
            raise NoStream("the file has no audio stream")
        stream = container.streams.audio[0]
        duration_s = container_duration_s(container)
        if duration_s is not None and duration_s > max_duration_s:
            raise MediaLimitExceeded(
                f"audio lasts {duration_s:.0f} s, more than the {max_duration_s:.0f} s allowed",
                duration_s=duration_s,
                max_duration_s=max_duration_s,
            )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        pending: list[np.ndarray] = []
        pending_n = total_n = bad_packets = 0
        reported = 0.0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad_packets += 1
                    if bad_packets > _MAX_BAD_PACKETS:
                        raise
                    continue
                if packet.dts is None:  # the flush packet at the end of the stream
                    frames = [*frames, None]
                for frame in frames:
                    for out in resampler.resample(frame):
                        chunk = out.to_ndarray().reshape(-1)
                        pending.append(chunk)
                        pending_n += chunk.size
                        total_n += chunk.size
                if total_n > max_samples:
                    raise MediaLimitExceeded(
                        f"audio lasts more than the {max_duration_s:.0f} s allowed",
                        max_duration_s=max_duration_s,
                    )
                while pending_n >= BLOCK_SAMPLES:
                    buf = np.concatenate(pending)
                    yield buf[:BLOCK_SAMPLES]
                    pending, pending_n = [buf[BLOCK_SAMPLES:]], buf.size - BLOCK_SAMPLES
                    if duration_s:
                        fraction = min(total_n / SAMPLE_RATE_HZ / duration_s, 0.99)
                        if fraction - reported >= 0.01:
                            reported = fraction
                            progress(fraction)
        except (av.error.FFmpegError, ValueError) as exc:  # PyAV raises ValueError on some broken frames
            raise DecodeFailed(f"the audio stream is corrupt or truncated: {exc}") from exc
        if total_n == 0:
            raise EmptyMedia("the audio stream decodes to no samples")
        if pending_n:
            yield np.concatenate(pending)
