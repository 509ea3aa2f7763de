"""The pairwise pipeline: two local inputs of one kind in, one envelope out.

Identical bytes take the exact path (score 1.0 and, for timed media, the whole duration as the segment)
without decoding. Otherwise both sides are fingerprinted and compared by the kind. The two fingerprints are
looked up in an optional ``FingerprintCache`` first; the missing ones are computed at the same time, the
source's on a worker thread and the target's on the calling one (decoders release the GIL, so two decodes
take about the time of one on two cores), and the cache is only ever used on the calling thread.
The request's ``threshold`` (default: the kind's setting) turns the score into the ``match`` boolean; for
timed media, segments shorter than ``min_segment_s`` are dropped, and a match needs at least one segment
left, so a strong but incidental one-second overlap can be filtered out by the caller.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from shared.errors import MediaError
from shared.protocol import Fingerprint, LocalMedia, Match, MediaKind, Progress, Segment, no_progress
from shared.schemas import SCHEMA_VERSION, EnvelopeSchema
from shared.settings import Settings

_ENVELOPE = EnvelopeSchema()


@dataclass(frozen=True)
class MatchOptions:
    threshold: float | None = None
    min_segment_s: float | None = None

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> MatchOptions:
        return cls(threshold=request.get("threshold"), min_segment_s=request.get("min_segment_s"))


DEFAULT_OPTIONS = MatchOptions()


def match_media(
    kind: MediaKind,
    source: LocalMedia,
    target: LocalMedia,
    settings: Settings,
    options: MatchOptions = DEFAULT_OPTIONS,
    progress: Progress = no_progress,
    started_s: float | None = None,
    cache: FingerprintCache | None = None,
) -> dict[str, Any]:
    """Match ``source`` against ``target``; ``cache`` may serve and keep the fingerprints."""
    t0 = time.perf_counter() if started_s is None else started_s
    timed = kind.name != "image"
    durations: tuple[float | None, float | None]
    if source.sha256 == target.sha256:
        duration = kind.probe_duration_s(source, settings)
        whole = (Segment(0.0, duration, 0.0, duration, 1.0),) if timed and duration else ()
        result = Match(
            similarity_score=1.0, confidence="high", segments=whole, details={"method": "exact_bytes"}
        )
        durations = (duration, duration)
    else:
        fa, fb = _fingerprint_pair(kind, (source, target), settings, progress, cache)
        result = kind.compare(fa, fb, _with_min_segment(settings, kind.name, options.min_segment_s))
        durations = (fa.duration_s, fb.duration_s)
    progress(0.98)

    threshold = settings.threshold_for(kind.name) if options.threshold is None else options.threshold
    min_segment_s = options.min_segment_s
    if min_segment_s is None and timed:
        min_segment_s = float(getattr(settings, kind.name).min_segment_s)
    segments = [s for s in result.segments if not timed or s.duration_s >= (min_segment_s or 0.0)]
    # A timed match needs a segment that survived the length filter.
    matched = result.similarity_score >= threshold and not (timed and result.segments and not segments)
    envelope = {
        "match": bool(matched),
        "confidence": result.confidence,
        "similarity_score": round(float(result.similarity_score), 4),
        "processing_time_ms": int(round((time.perf_counter() - t0) * 1000)),
        "media_type": kind.name,
        "matched_segments": [s.to_json() for s in segments],
        "schema_version": SCHEMA_VERSION,
        "exact_match": source.sha256 == target.sha256,
        "threshold": threshold,
        "warnings": list(result.warnings),
        "details": dict(result.details),
        "audio_similarity": result.details.get("audio_similarity") if kind.name == "video" else None,
        "source": _probe(source, durations[0]),
        "target": _probe(target, durations[1]),
        "job_id": None,
    }
    dumped: dict[str, Any] = _ENVELOPE.dump(envelope)
    return dumped


class FingerprintCache(Protocol):
    """Where ``match_media`` looks a side's fingerprint up before computing it, and keeps it after. Both
    methods are only ever called on ``match_media``'s own thread (a database connection stays there)."""

    def get(self, kind: MediaKind, media: LocalMedia) -> Fingerprint | None: ...

    def put(self, kind: MediaKind, media: LocalMedia, fingerprint: Fingerprint) -> None: ...


class _Abandoned(BaseException):
    """Raised into a side's computation at its next progress report once its result can only be thrown
    away. A ``BaseException``, so that no kind's error handling turns it into a media error."""


class _Progress:
    """The two sides' progress as one monotone fraction from 0.05 to 0.95; once ``stop`` is set, a side's
    next report raises ``_Abandoned``."""

    def __init__(self, progress: Progress, done: list[bool]) -> None:
        self._progress, self._lock = progress, threading.Lock()
        self._fractions = [1.0 if d else 0.0 for d in done]
        self._reported = 0.0
        self.stop = threading.Event()

    def side(self, index: int) -> Progress:
        def report(fraction: float) -> None:
            if self.stop.is_set():
                raise _Abandoned("the other side failed")
            with self._lock:  # held while reporting, so the two threads' reports stay in order
                self._fractions[index] = min(max(float(fraction), self._fractions[index]), 1.0)
                total = min(0.05 + 0.45 * sum(self._fractions), 0.95)
                if total > self._reported:
                    self._reported = total
                    self._progress(total)

        return report


def _fingerprint_pair(
    kind: MediaKind,
    sides: tuple[LocalMedia, LocalMedia],
    settings: Settings,
    progress: Progress,
    cache: FingerprintCache | None,
) -> list[Fingerprint]:
    """The source's and the target's fingerprints: from ``cache`` when it has them, else computed (two at
    the same time, ``_both``) and put there."""
    found = [cache.get(kind, m) if cache is not None else None for m in sides]
    tracker = _Progress(progress, [fp is not None for fp in found])
    missing = [i for i, fp in enumerate(found) if fp is None]
    if len(missing) == 2:
        fps = _both(kind, sides, settings, tracker)
    else:
        fps = [
            fp if fp is not None else kind.fingerprint(m, settings, tracker.side(i))
            for i, (m, fp) in enumerate(zip(sides, found, strict=True))
        ]
    if cache is not None:
        for i in missing:
            cache.put(kind, sides[i], fps[i])
    return fps


def _both(
    kind: MediaKind, sides: tuple[LocalMedia, LocalMedia], settings: Settings, tracker: _Progress
) -> list[Fingerprint]:
    """The source on a worker thread while the target runs here: decoders release the GIL, so on two cores
    two decodes take about the time of one.

    Errors keep their type, and when both sides fail the source's error is raised, as when the two ran one
    after the other. A failed source stops the target at its next progress report; a target that failed on
    its media lets the source finish (its error would win); any other failure here (a cancel, a time limit)
    stops the source too. The worker is always joined before this returns or raises.
    """
    source, target = sides
    with ThreadPoolExecutor(1, thread_name_prefix="fingerprint-source") as pool:
        future = pool.submit(kind.fingerprint, source, settings, tracker.side(0))
        future.add_done_callback(lambda f: _stop_if_failed(f, tracker))
        try:
            fb = kind.fingerprint(target, settings, tracker.side(1))
        except BaseException as exc:
            if not isinstance(exc, MediaError):
                tracker.stop.set()
            source_error = future.exception()
            if source_error is not None and not isinstance(source_error, _Abandoned):
                raise source_error from None
            raise
        try:
            fa = future.result()
        except BaseException:  # the source failed, or this wait was interrupted (a time limit)
            tracker.stop.set()
            raise
    return [fa, fb]


def _stop_if_failed(future: Future[Fingerprint], tracker: _Progress) -> None:
    if future.exception() is not None:
        tracker.stop.set()


def _with_min_segment(settings: Settings, kind: str, min_segment_s: float | None) -> Settings:
    """A per-request ``min_segment_s`` reaches the kind's own run extraction, so a shorter value than
    the default yields shorter segments instead of only filtering them afterwards."""
    if min_segment_s is None or kind == "image":
        return settings
    section = getattr(settings, kind)
    return dataclasses.replace(settings, **{kind: dataclasses.replace(section, min_segment_s=min_segment_s)})


def _probe(media: LocalMedia, duration_s: float | None) -> dict[str, Any]:
    return {
        "size_bytes": media.size_bytes,
        "sha256": media.sha256,
        "mime": media.mime,
        "duration_s": None if duration_s is None else round(float(duration_s), 3),
    }
