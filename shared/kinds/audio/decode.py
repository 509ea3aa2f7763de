"""Streamed, sandboxed audio decoding with PyAV: a local file in, mono float32 blocks at 8000 Hz out.

The whole pipeline runs inside FFmpeg, in one filter graph: ``amovie`` (demux and decode) -> ``aformat``
(FFmpeg inserts the same ``aresample`` conversion that ``av.AudioResampler`` uses, to mono float32 at
8000 Hz) -> ``abuffersink`` cutting blocks of ``BLOCK_SAMPLES``. Python only pulls finished blocks, so there
is no per-frame Python cost, and PyAV releases the GIL while FFmpeg works: two files decode in parallel
in two threads. The file is never loaded whole: FFmpeg reads packets as the sink asks for samples.

Sandboxing: the file is first opened with ``shared.ffmpeg.open_local`` (FFmpeg may only use the ``file``
protocol, the demuxer is forced from the sniffed MIME type when it is known, and playlist or concat
demuxers are refused). ``amovie`` then reopens that same ``file:`` URL with that same demuxer (never a
probe), the same ``protocol_whitelist=file`` and the audio stream chosen there, so an input can never make
FFmpeg open further files or URLs. Filter options are passed as a dictionary (``avfilter_init_dict``), never
as a filter-graph string, so nothing in the path needs escaping.

Corrupt packets: ``amovie`` returns a decoder error to the sink once per bad packet and moves on to the
next packet, so a few are skipped (real files have glitches) and more than ``_MAX_BAD_PACKETS`` fail the
decode. Unlike PyAV's demux loop, ``amovie`` ends the stream at any demuxer read error as at end of file.

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
import av.filter
import numpy as np

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, NoStream
from shared.ffmpeg import OPTIONS, local_url, open_local
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


def _graph(path: Path, demuxer: str, stream_index: int) -> av.filter.Graph:
    """A configured graph whose one sink gives ``path``'s stream ``stream_index`` as mono float32 blocks."""
    graph = av.filter.Graph()
    graph.threads = 1  # one decode is one thread: matching runs two side by side on small machines
    source = graph.add(
        "amovie",
        filename=local_url(path),  # the URL ``open_local`` opened and checked
        format_name=demuxer,
        stream_index=str(stream_index),
        format_opts=":".join(f"{k}={v}" for k, v in OPTIONS.items()),
        dec_threads="1",
    )
    # Only the output is constrained: FFmpeg inserts the conversion exactly as ``av.AudioResampler`` does.
    convert = graph.add("aformat", sample_fmts="flt", sample_rates=str(SAMPLE_RATE_HZ), channel_layouts="mono")
    sink = graph.add("abuffersink")
    graph.link_nodes(source, convert, sink)
    graph.configure()
    graph.set_audio_frame_size(BLOCK_SAMPLES)
    return graph


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
        stream_index = container.streams.audio[0].index
        demuxer = str(container.format.name)  # forced from the MIME type, or probed; never a refused one
        duration_s = container_duration_s(container)
    if duration_s is not None and duration_s > max_duration_s:
        raise MediaLimitExceeded(
            f"audio lasts {duration_s:.0f} s, more than the {max_duration_s:.0f} s allowed",
            duration_s=duration_s,
            max_duration_s=max_duration_s,
        )
    total_n = bad_packets = 0
    reported = 0.0
    try:
        graph = _graph(path, demuxer, stream_index)
        while True:
            try:
                frame = graph.pull()  # FFmpeg demuxes, decodes and converts until a block is full
            except av.error.EOFError:
                break
            except av.error.InvalidDataError:  # one corrupt packet; amovie goes on with the next one
                bad_packets += 1
                if bad_packets > _MAX_BAD_PACKETS:
                    raise
                continue
            block = frame.to_ndarray().reshape(-1)  # a copy: the frame's buffer is not kept
            total_n += block.size
            if total_n > max_samples:
                raise MediaLimitExceeded(
                    f"audio lasts more than the {max_duration_s:.0f} s allowed", max_duration_s=max_duration_s
                )
            yield block
            if duration_s:
                fraction = min(total_n / SAMPLE_RATE_HZ / duration_s, 0.99)
                if fraction - reported >= 0.01:
                    reported = fraction
                    progress(fraction)
    except (av.error.FFmpegError, ValueError) as exc:  # PyAV raises ValueError on some broken frames
        raise DecodeFailed(f"the audio stream is corrupt or truncated: {exc}") from exc
    if total_n == 0:
        raise EmptyMedia("the audio stream decodes to no samples")
