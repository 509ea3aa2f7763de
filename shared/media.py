"""Turn what a user gave (a URL, an uploaded file, or a local path in the CLI) into ``LocalMedia``.

The bytes are streamed to a work directory under a per-kind byte cap, hashed on the way, and sniffed; the
type must be one the kind can decode. Nothing is trusted from names or headers. The caller owns the work
directory and removes it (``workdir``).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from shared.errors import EmptyMedia, MediaTooLarge, NotFound, UnsupportedMedia, UrlNotAllowed
from shared.fetch import FetchResult, fetch_to_file, save_stream
from shared.protocol import LocalMedia, MediaKind
from shared.settings import Settings
from shared.sniff import SNIFF_BYTES, sniff


@contextlib.contextmanager
def workdir(settings: Settings, prefix: str = "job-") -> Iterator[Path]:
    """A private temporary directory under the data dir, always removed."""
    root = settings.data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def is_url(ref: str) -> bool:
    return "://" in ref[:16]


def resolve(
    ref: str,
    kind: MediaKind,
    settings: Settings,
    dest_dir: Path,
    name: str,
    *,
    allow_local_paths: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> LocalMedia:
    """Fetch a URL (or, in the CLI, read a local path) into ``dest_dir/name`` and describe it."""
    max_bytes = settings.fetch.max_bytes_for(kind.name)
    if is_url(ref):
        result = fetch_to_file(ref, dest_dir / name, max_bytes=max_bytes, settings=settings.fetch, on_bytes=on_bytes)
        return describe(dest_dir / name, result, kind)
    if not allow_local_paths:
        raise UrlNotAllowed("only http and https URLs are accepted")
    path = Path(ref)
    if not path.is_file():
        raise NotFound(f"no such file: {ref}")
    return describe(path, hash_file(path, max_bytes), kind)


def save_upload(stream: IO[bytes], kind: MediaKind, settings: Settings, dest: Path) -> LocalMedia:
    result = save_stream(stream, dest, max_bytes=settings.fetch.max_bytes_for(kind.name))
    return describe(dest, result, kind)


def hash_file(path: Path, max_bytes: int) -> FetchResult:
    size = path.stat().st_size
    if size > max_bytes:
        raise MediaTooLarge(f"{path.name} is {size} bytes; the limit is {max_bytes}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        digest.update(head)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return FetchResult(size_bytes=size, sha256=digest.hexdigest(), head=head, final_url=path.as_uri(), redirects=0)


def describe(path: Path, result: FetchResult, kind: MediaKind) -> LocalMedia:
    if result.size_bytes == 0:
        raise EmptyMedia("the file is empty (0 bytes)")
    mime = sniff(result.head)
    if mime is None:
        raise UnsupportedMedia("the bytes are not a recognised image, audio or video format")
    if not kind.accepts(mime):
        raise UnsupportedMedia(f"the bytes are {mime}, which is not {kind.name} media", mime=mime)
    return LocalMedia(path=path, size_bytes=result.size_bytes, sha256=result.sha256, mime=mime)
