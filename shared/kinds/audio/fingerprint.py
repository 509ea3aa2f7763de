"""The audio fingerprint value: landmark hashes with their anchor frames, plus the peak list they came from.

Binary form (little-endian), after ``shared.protocol.pack_header("audio", 1)``::

    duration_s f64 | sample_rate_hz u32 | hop u16 | n_fft u16 | n_peaks u32 | n_hashes u32
    peak_frame u32[n_peaks] | peak_bin u16[n_peaks] | hash u32[n_hashes] | hash_frame u32[n_hashes]

About 20 peaks/s and 60 hashes/s, i.e. at most ~37 kB per minute. Hashes and frames are plain arrays so a
catalog can load them straight into an inverted index (hash -> (item, frame)). Frames are u32, so they do
not wrap on long files (audfprint #72).
This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from shared.errors import DecodeFailed
from shared.kinds.audio.decode import SAMPLE_RATE_HZ
from shared.kinds.audio.landmarks import HOP, N_FFT, PeakStream, hash_peaks, limit_density
from shared.protocol import pack_header, unpack_header

_META = struct.Struct("<dIHHII")


@dataclass(frozen=True, eq=False)
class AudioFingerprint:
    kind: ClassVar[str] = "audio"
    version: ClassVar[int] = 1

    duration_s: float
    #: Peaks in time order: STFT frame index and frequency bin.
    peak_frames: np.ndarray = field(repr=False)
    peak_bins: np.ndarray = field(repr=False)
    #: Landmark hashes (21 significant bits) and the frame of each hash's anchor peak, in time order.
    hashes: np.ndarray = field(repr=False)
    hash_frames: np.ndarray = field(repr=False)
    sample_rate_hz: int = SAMPLE_RATE_HZ
    hop: int = HOP
    n_fft: int = N_FFT

    @property
    def frame_s(self) -> float:
        return self.hop / self.sample_rate_hz

    @property
    def n_hashes(self) -> int:
        return int(self.hashes.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioFingerprint):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_bytes(self) -> bytes:
        meta = _META.pack(
            float(self.duration_s),
            self.sample_rate_hz,
            self.hop,
            self.n_fft,
            self.peak_frames.size,
            self.hashes.size,
        )
        return b"".join(
            [
                pack_header(self.kind, self.version),
                meta,
                self.peak_frames.astype("<u4").tobytes(),
                self.peak_bins.astype("<u2").tobytes(),
                self.hashes.astype("<u4").tobytes(),
                self.hash_frames.astype("<u4").tobytes(),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AudioFingerprint:
        payload = unpack_header(data, cls.kind, cls.version)
        if len(payload) < _META.size:
            raise DecodeFailed("audio fingerprint bytes are truncated")
        duration_s, rate, hop, n_fft, n_peaks, n_hashes = _META.unpack_from(payload)
        if len(payload) != _META.size + 6 * n_peaks + 8 * n_hashes:
            raise DecodeFailed("audio fingerprint bytes have the wrong length")
        offset = _META.size

        def take(dtype: str, count: int) -> np.ndarray:
            nonlocal offset
            arr = np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
            offset += arr.nbytes
            return arr.astype(dtype[1:])  # native order, and a writable copy detached from ``data``

        return cls(
            duration_s=duration_s,
            peak_frames=take("<u4", n_peaks),
            peak_bins=take("<u2", n_peaks),
            hashes=take("<u4", n_hashes),
            hash_frames=take("<u4", n_hashes),
            sample_rate_hz=rate,
            hop=hop,
            n_fft=n_fft,
        )


def fingerprint_stream(peaks: PeakStream) -> AudioFingerprint:
    """Finish a fed ``PeakStream`` and build the fingerprint."""
    t, f, prominence = peaks.finish()
    t, f = limit_density(t, f, prominence)
    hashes, hash_frames = hash_peaks(t, f)
    return AudioFingerprint(
        duration_s=peaks.n_samples / SAMPLE_RATE_HZ,
        peak_frames=t,
        peak_bins=f,
        hashes=hashes,
        hash_frames=hash_frames,
    )


def fingerprint_samples(samples: np.ndarray, block_samples: int = 4 * SAMPLE_RATE_HZ) -> AudioFingerprint:
    """Fingerprint mono float samples already at ``SAMPLE_RATE_HZ`` (the pure core of ``KIND.fingerprint``)."""
    peaks = PeakStream()
    for start in range(0, samples.size, block_samples):
        peaks.feed(samples[start : start + block_samples])
    return fingerprint_stream(peaks)
