"""The soundtrack's agreement, reported beside the visual match (``details.audio_similarity``), never part of it.

A video's match is decided on pictures (issue 5: swapped or removed audio must not change it). Whether the two
soundtracks also agree is still worth telling a reviewer, so the video fingerprint carries the audio kind's own
fingerprint of the first audio track, made and compared through its public ``KIND`` (``shared.kinds``); the
video kind knows nothing of how audio is matched. A file without an audio track gives ``None``.
"""

from __future__ import annotations

from shared.errors import MediaError, NoStream
from shared.kinds import get_kind
from shared.protocol import LocalMedia, Progress
from shared.settings import Settings


def fingerprint_audio(media: LocalMedia, settings: Settings, progress: Progress) -> bytes:
    """The audio kind's fingerprint bytes of ``media``'s soundtrack; empty when there is none or it is unreadable."""
    if not settings.video.audio_similarity:
        return b""
    try:
        return get_kind("audio").fingerprint(media, settings, progress).to_bytes()
    except NoStream:
        return b""
    except MediaError:  # a broken soundtrack must not fail a visual match; it reads as "no audio"
        return b""


def audio_similarity(a: bytes, b: bytes, settings: Settings) -> float | None:
    """The audio kind's similarity score of two soundtracks, or ``None`` when either side has none."""
    if not a or not b:
        return None
    kind = get_kind("audio")
    match = kind.compare(kind.fingerprint_from_bytes(a), kind.fingerprint_from_bytes(b), settings)
    return round(float(match.similarity_score), 4)
