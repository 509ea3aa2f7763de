"""The audio media kind: spectral-peak landmarks (Wang 2003) with offset-histogram alignment.

``KIND`` implements ``shared.protocol.MediaKind``. The package is split by stage:

- ``decode``: streamed, sandboxed PyAV decoding to 8 kHz mono (the only module that touches PyAV);
- ``landmarks``: STFT, peak picking and landmark hashing (pure numpy/scipy);
- ``fingerprint``: the ``AudioFingerprint`` value and its binary form;
- ``match``: offset histogram, aligned runs and the score.

This version is robust to re-encoding, resampling, level changes and excerpts, not to pitch or tempo
changes (``details["time_scale"]`` is always 1.0); a Panako-style version can re-hash the stored peaks.
Nothing here imports Flask or Celery.
"""

from __future__ import annotations

from shared.errors import InvalidRequest
from shared.kinds.audio.decode import iter_samples, probe_duration_s
from shared.kinds.audio.fingerprint import AudioFingerprint, fingerprint_samples, fingerprint_stream
from shared.kinds.audio.landmarks import PeakStream
from shared.kinds.audio.match import compare
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
