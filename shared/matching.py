"""The pairwise pipeline: two local inputs of one kind in, one envelope out.

Identical bytes take the exact path (score 1.0 and, for timed media, the whole duration as the segment)
without decoding. Otherwise both sides are fingerprinted and compared by the kind. The request's
``threshold`` (default: the kind's setting) turns the score into the ``match`` boolean; for timed media,
segments shorter than ``min_segment_s`` are dropped, and a match needs at least one segment left, so a
strong but incidental one-second overlap can be filtered out by the caller.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.protocol import Fingerprint, LocalMedia, Match, MediaKind, Progress, Segment, no_progress
from shared.schemas import SCHEMA_VERSION, EnvelopeSchema
from shared.settings import Settings

_ENVELOPE = EnvelopeSchema()
Fingerprinter = Callable[[MediaKind, LocalMedia, Settings, Progress], Fingerprint]


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
    fingerprinter: Fingerprinter | None = None,
) -> dict[str, Any]:
    """Match ``source`` against ``target``; ``fingerprinter`` may serve fingerprints from a cache."""
    compute = fingerprinter or (lambda k, m, s, p: k.fingerprint(m, s, p))
    t0 = time.perf_counter() if started_s is None else started_s
    timed = kind.name != "image"
    durations: tuple[float | None, float | None]
    if source.sha256 == target.sha256:
        duration = kind.probe_duration_s(source, settings)
        whole = (Segment(0.0, duration, 0.0, duration, 1.0),) if timed and duration else ()
        result = Match(similarity_score=1.0, confidence="high", segments=whole, details={"method": "exact_bytes"})
        durations = (duration, duration)
    else:
        fa = compute(kind, source, settings, lambda f: progress(0.05 + 0.45 * f))
        fb = compute(kind, target, settings, lambda f: progress(0.5 + 0.45 * f))
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
