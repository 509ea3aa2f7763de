"""Opening media with FFmpeg (through PyAV) safely: one local file, one demuxer we chose, nothing else.

- FFmpeg gets a ``file:`` URL with ``protocol_whitelist=file``, so no input can make it open http, tcp,
  pipes, ``concat:`` or ``subfile:`` (an HLS playlist naming an http URL fails with "not on whitelist").
- The demuxer is forced from the type we sniffed from the bytes, so FFmpeg never probes its way into a
  playlist; demuxers that read lists of other inputs are refused even if one were reached.
- PyAV's errors become ``DecodeFailed``; empty files ``EmptyMedia``.

Used by the audio and the video kinds; this module imports neither Flask nor Celery.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import av.container

from shared.errors import DecodeFailed, EmptyMedia, UnsupportedMedia

#: The demuxer for each sniffed type (see ``shared.sniff``).
DEMUXER_FOR_MIME = {
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "audio/mp4": "mov",
    "video/webm": "matroska",
    "video/x-matroska": "matroska",
    "video/x-msvideo": "avi",
    "video/x-flv": "flv",
    "video/mpeg": "mpeg",
    "video/mp2t": "mpegts",
    "video/x-ms-asf": "asf",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
    "audio/aiff": "aiff",
}
#: Demuxers that read lists of other files or URLs.
REFUSED_DEMUXERS = frozenset(
    {"hls", "applehttp", "concat", "ffconcat", "dash", "image2", "lavfi", "tee", "sdp", "rtsp"}
)
OPTIONS = {"protocol_whitelist": "file"}


def local_url(path: Path) -> str:
    """The ``file:`` URL FFmpeg is given for ``path`` (the only protocol ``OPTIONS`` allows)."""
    return "file:" + str(Path(path).resolve())


@contextmanager
def open_local(path: Path, mime: str | None, what: str) -> Iterator[av.container.InputContainer]:
    """Open ``path`` (sniffed as ``mime``) for reading; ``what`` names the media in error messages."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise EmptyMedia(f"the {what} file is empty")
    try:
        container = av.open(
            local_url(path), mode="r", format=DEMUXER_FOR_MIME.get(mime or ""), options=OPTIONS
        )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeFailed(f"cannot open the {what}: {exc}") from exc
    try:
        if set(str(container.format.name).split(",")) & REFUSED_DEMUXERS:
            raise UnsupportedMedia(f"container format {container.format.name!r} (a playlist) is not accepted")
        yield container
    finally:
        container.close()
