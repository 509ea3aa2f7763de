"""The one protocol that every media kind (image, audio, video) implements.

What the media *is* (a local file that was fetched, sniffed and hashed: ``LocalMedia``) is kept apart from
what is *computed* from it (a ``Fingerprint``) and from how two fingerprints *compare* (a ``Match``). The
pipeline in ``shared/matching.py`` only speaks this protocol, so a kind can be replaced by a stronger one
without touching the service.

A kind's ``name`` is written by hand: it is a storage key and a URL segment, never derived from a class
name. Fingerprints are typed values with a versioned binary form (``to_bytes``/``from_bytes``); they are
never JSON strings re-parsed on every compare.

This module imports nothing from Flask or Celery.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from shared.errors import DecodeFailed
from shared.settings import Settings

Confidence = Literal["low", "medium", "high"]

#: Called with the fraction of work done, in [0, 1]. It may raise ``JobCanceled`` to stop the work.
Progress = Callable[[float], None]


def no_progress(_fraction: float) -> None:
    """A ``Progress`` that ignores updates."""


@dataclass(frozen=True)
class LocalMedia:
    """A fetched or uploaded input, on local disk, with the facts learned while storing it."""

    path: Path
    size_bytes: int
    sha256: str
    #: Sniffed from the bytes, never from the name or a header, e.g. ``image/jpeg`` or ``video/mp4``.
    mime: str


@dataclass(frozen=True)
class Segment:
    """One aligned run: ``[source_start_s, source_end_s]`` of the source is ``[target_...]`` of the target."""

    source_start_s: float
    source_end_s: float
    target_start_s: float
    target_end_s: float
    score: float

    @property
    def duration_s(self) -> float:
        return max(self.source_end_s - self.source_start_s, self.target_end_s - self.target_start_s)

    def to_json(self) -> dict[str, float]:
        """The envelope's field names, in seconds, rounded to the millisecond."""
        return {
            "source_start": round(self.source_start_s, 3),
            "source_end": round(self.source_end_s, 3),
            "target_start": round(self.target_start_s, 3),
            "target_end": round(self.target_end_s, 3),
            "score": round(float(self.score), 4),
        }


@dataclass(frozen=True)
class Match:
    """What ``compare`` found. ``similarity_score`` is the source of truth, in [0, 1], monotone in evidence.

    The ``match`` boolean is not stored here: it is ``similarity_score >= threshold``, and the threshold
    belongs to the request (default from ``Settings``).
    """

    similarity_score: float
    confidence: Confidence
    segments: tuple[Segment, ...] = ()
    warnings: tuple[str, ...] = ()
    #: A reviewer-facing explanation (detected transform, offsets, counts); JSON-serialisable.
    details: Mapping[str, Any] = field(default_factory=dict)


class Fingerprint(Protocol):
    kind: ClassVar[str]
    version: ClassVar[int]

    @property
    def duration_s(self) -> float | None:
        """Seconds of media covered; ``None`` for still images."""

    def to_bytes(self) -> bytes: ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint: ...


class MediaKind(Protocol):
    #: Hand-written, stable: "image", "audio" or "video".
    name: str

    def accepts(self, mime: str) -> bool:
        """Whether a sniffed MIME type can hold this kind of media."""

    def probe_duration_s(self, media: LocalMedia, settings: Settings) -> float | None:
        """Cheap duration from the container header (for the exact-bytes path); ``None`` for images."""

    def fingerprint(self, media: LocalMedia, settings: Settings, progress: Progress = no_progress) -> Fingerprint:
        """Decode and fingerprint; raises only ``shared.errors`` types."""

    def compare(self, a: Fingerprint, b: Fingerprint, settings: Settings) -> Match:
        """Compare a source fingerprint ``a`` with a target fingerprint ``b``."""

    def fingerprint_from_bytes(self, data: bytes) -> Fingerprint:
        """Inverse of ``Fingerprint.to_bytes`` for this kind."""

    # Optional: ``compare_or_bound(a, b, settings, floor) -> Match | float``: ``compare``, or an upper bound
    # of its similarity_score when a cheap one is below ``floor``. Catalog search
    # (``shared.index.replica.verify_tiers``) then skips the full compare of candidates that cannot reach
    # its current top K. The image kind has one.


# -- a shared versioned header for fingerprint bytes ----------------------------------------------------
_MAGIC = b"MMFP"
_HEADER = struct.Struct("<4s8sH")  # magic, kind name (padded), version


def pack_header(kind: str, version: int) -> bytes:
    return _HEADER.pack(_MAGIC, kind.encode("ascii").ljust(8, b"\0"), version)


def unpack_header(data: bytes, kind: str, version: int) -> memoryview:
    """Check the header of ``data`` and return the payload after it."""
    if len(data) < _HEADER.size:
        raise DecodeFailed("fingerprint bytes are truncated")
    magic, name, ver = _HEADER.unpack_from(data)
    if magic != _MAGIC or name.rstrip(b"\0").decode("ascii", "replace") != kind:
        raise DecodeFailed(f"not a {kind} fingerprint")
    if ver != version:
        raise DecodeFailed(f"{kind} fingerprint version {ver} is not supported (expected {version})")
    return memoryview(data)[_HEADER.size :]
