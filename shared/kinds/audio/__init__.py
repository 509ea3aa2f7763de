"""The audio media kind: Panako-style triplet hashes, robust to pitch, tempo and speed change, with line fits.

``KIND`` implements ``shared.protocol.MediaKind``. The package is split by stage:

- ``decode``: streamed, sandboxed PyAV decoding to 8 kHz mono (the only module that touches PyAV);
- ``peaks``: log-frequency spectrogram and spectral peaks, streamed in blocks (pure numpy/scipy);
- ``triplets``: hashes of three peaks that do not change under time stretch or pitch shift;
- ``fingerprint``: the ``AudioFingerprint`` value and its binary form;
- ``hough``: hash pairs and a Hough vote over lines ``t_target = a * t_source + b``;
- ``edges``: segment edges refined peak by peak;
- ``match``: runs along each line, segments, the score and how to read it with segment durations.

Why this design (issue 4): Wang-style pair landmarks (the first version here; audfprint, Dejavu) hash
absolute frequencies and time differences, so a pitch shift over ~1% or a tempo change over ~5% breaks
them, and Chromaprint's fixed-offset chroma comparison breaks past ~2.5% speed change. Panako (Six & Leman,
ISMIR 2014; Six, JOSS 2021) hashes what those changes leave alone: differences of log-frequency positions
and ratios of time differences. The verifier then fits one line per alignment, so a time-scaled copy gives
one straight run (its slope is the time-scale factor) instead of an offset histogram smeared over many
bins, and the median anchor-band difference along the line gives the pitch factor. Both are reported in
``Match.details`` (``time_scale``: target seconds per source second; ``pitch_factor``: target / source).
Nothing here imports Flask or Celery.
"""

from __future__ import annotations

from shared.errors import InvalidRequest
from shared.kinds.audio.decode import iter_samples, probe_duration_s
from shared.kinds.audio.fingerprint import AudioFingerprint, fingerprint_samples, fingerprint_stream
from shared.kinds.audio.match import compare
from shared.kinds.audio.peaks import PeakStream
from shared.protocol import Fingerprint, LocalMedia, Match, Progress, no_progress
from shared.settings import Settings
from shared.sniff import AUDIO_ONLY_MIMES, VIDEO_MIMES

__all__ = ["KIND", "AudioFingerprint", "AudioKind", "fingerprint_samples"]


class AudioKind:
    name = "audio"

    def accepts(self, mime: str) -> bool:
        return mime in AUDIO_ONLY_MIMES or mime in VIDEO_MIMES

    def probe_duration_s(self, media: LocalMedia, settings: Settings) -> float | None:
        return probe_duration_s(media.path, media.mime)

    def fingerprint(
        self, media: LocalMedia, settings: Settings, progress: Progress = no_progress
    ) -> AudioFingerprint:
        peaks = PeakStream()
        for block in iter_samples(media.path, media.mime, settings.audio.max_duration_s, progress):
            peaks.feed(block)
        fingerprint = fingerprint_stream(peaks)
        progress(1.0)
        return fingerprint

    def compare(self, a: Fingerprint, b: Fingerprint, settings: Settings) -> Match:
        if not isinstance(a, AudioFingerprint) or not isinstance(b, AudioFingerprint):
            raise InvalidRequest("the audio kind compares audio fingerprints only")
        return compare(a, b, settings)

    def fingerprint_from_bytes(self, data: bytes) -> AudioFingerprint:
        return AudioFingerprint.from_bytes(data)


KIND = AudioKind()
