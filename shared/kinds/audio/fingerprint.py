"""The audio fingerprint value: pitch- and tempo-invariant triplet hashes, plus the peaks they came from.

Binary form (little-endian), after ``shared.protocol.pack_header("audio", 5)``::

    duration_s f64 | sample_rate_hz u32 | hop u16 | n_fft u16 | n_peaks u32 | n_hashes u32 | n_sustain u32
    | n_rows u32
    peak_frame u32[n_peaks] | peak_band u16[n_peaks]            (band position in 1/16 band)
    hash u16[n] | hash_frame u32[n] | span u8[n] | anchor_band u16[n] | probe u8[n]
    sustain u8[n_sustain]                                        (SUSTAIN_PER_FRAME bands + 1 per 4th frame)
    rows u8[n_rows, 7]                     (loudness, then 16 + 15 + 15 shape bits at 3 band offsets, per 4th frame)

At most ``EDGE_PEAKS_PER_S`` (16) peaks, ``MAX_HASHES_PER_S`` (59) hashes, 31.25 sustain bytes and 109.4 row
bytes per second: 10 bytes per hash and 6 per peak give at most 49.6 kB per minute (a hard bound, whatever
the content; music and speech use 20-40 kB). Hashes and frames are plain arrays, so a catalog can load them
straight into an inverted index (hash -> (item, frame)) and query it with ``probe_variants``. Frames are u32,
so they do not wrap on long files (audfprint #72).
This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from shared.errors import DecodeFailed
from shared.kinds.audio.decode import SAMPLE_RATE_HZ
from shared.kinds.audio.peaks import (
    EDGE_PEAKS_PER_S,
    FRAME_S,
    HOP,
    N_FFT,
    PEAKS_PER_S,
    ROW_BYTES,
    PeakStream,
    limit_density,
)
from shared.kinds.audio.triplets import hash_triplets
from shared.protocol import pack_header, unpack_header

_META = struct.Struct("<dIHHIIII")
#: Hashes kept per one-second window of anchor frames (the ones with the shortest spans first).
MAX_HASHES_PER_S = 59
#: (attribute, little-endian dtype) of the per-peak arrays, then of the per-hash arrays, in byte order.
_PEAK_ARRAYS = (("peak_frames", "<u4"), ("peak_bands", "<u2"))
_HASH_ARRAYS = (("hashes", "<u2"), ("hash_frames", "<u4"), ("spans", "u1"), ("anchor_bands", "<u2"), ("probes", "u1"))


@dataclass(frozen=True, eq=False)
class AudioFingerprint:
    kind: ClassVar[str] = "audio"
    version: ClassVar[int] = 5

    duration_s: float
    #: Peaks in time order (the ``EDGE_PEAKS_PER_S`` set): frame index and log-band position (in 1/16 band).
    peak_frames: np.ndarray = field(repr=False)
    peak_bands: np.ndarray = field(repr=False)
    #: Triplet hashes (see ``triplets``) in anchor order, with the anchor frame, span t3 - t1 (frames),
    #: anchor band (1/16 band) and probe bits of each.
    hashes: np.ndarray = field(repr=False)
    hash_frames: np.ndarray = field(repr=False)
    spans: np.ndarray = field(repr=False)
    anchor_bands: np.ndarray = field(repr=False)
    probes: np.ndarray = field(repr=False)
    #: Sustain maxima (see ``peaks``), row-major (frame // SUSTAIN_EVERY, SUSTAIN_PER_FRAME), band + 1.
    sustain: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.uint8))
    #: Frame rows (see ``peaks._frame_rows``), (frame // SUSTAIN_EVERY, ROW_BYTES): loudness byte, then the
    #: shape bits of each band offset, low byte first.
    rows: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, ROW_BYTES), np.uint8))
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
            self.sustain.size,
            self.rows.size // ROW_BYTES,
        )
        arrays = [getattr(self, name).astype(dtype).tobytes() for name, dtype in _PEAK_ARRAYS + _HASH_ARRAYS]
        arrays.append(self.sustain.astype(np.uint8).reshape(-1).tobytes())
        arrays.append(self.rows.astype(np.uint8).reshape(-1).tobytes())
        return b"".join([pack_header(self.kind, self.version), meta, *arrays])

    @classmethod
    def from_bytes(cls, data: bytes) -> AudioFingerprint:
        payload = unpack_header(data, cls.kind, cls.version)
        if len(payload) < _META.size:
            raise DecodeFailed("audio fingerprint bytes are truncated")
        duration_s, rate, hop, n_fft, n_peaks, n_hashes, n_sustain, n_rows = _META.unpack_from(payload)
        if len(payload) != _META.size + 6 * n_peaks + 10 * n_hashes + n_sustain + ROW_BYTES * n_rows:
            raise DecodeFailed("audio fingerprint bytes have the wrong length")
        offset = _META.size
        values = {}
        for arrays, count in ((_PEAK_ARRAYS, n_peaks), (_HASH_ARRAYS, n_hashes)):
            for name, dtype in arrays:
                arr = np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
                offset += arr.nbytes
                values[name] = arr.astype(dtype.lstrip("<"))  # native order, a writable copy detached from data
        values["sustain"] = np.frombuffer(payload, dtype=np.uint8, count=n_sustain, offset=offset).copy()
        offset += n_sustain
        rows = np.frombuffer(payload, dtype=np.uint8, count=ROW_BYTES * n_rows, offset=offset)
        values["rows"] = rows.reshape(-1, ROW_BYTES).copy()
        return cls(duration_s=duration_s, sample_rate_hz=rate, hop=hop, n_fft=n_fft, **values)


def fingerprint_stream(peaks: PeakStream) -> AudioFingerprint:
    """Finish a fed ``PeakStream`` and build the fingerprint."""
    t, f, prominence = peaks.finish()
    keep = limit_density(t, f, prominence, EDGE_PEAKS_PER_S)
    t, f, prominence = t[keep], f[keep], prominence[keep]
    hashed = limit_density(t, f, prominence, PEAKS_PER_S)
    tr = hash_triplets(t[hashed], f[hashed])
    cap = _cap_hashes(tr.frames, tr.spans)
    return AudioFingerprint(
        duration_s=peaks.n_samples / SAMPLE_RATE_HZ,
        peak_frames=t.astype(np.uint32),
        peak_bands=np.round(f * 16).astype(np.uint16),
        hashes=tr.hashes[cap],
        hash_frames=tr.frames[cap],
        spans=tr.spans[cap],
        anchor_bands=tr.anchor_bands[cap],
        probes=tr.probes[cap],
        sustain=peaks.sustain().reshape(-1),
        rows=peaks.rows(),
    )


def _cap_hashes(frames: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Indices (in order) of the hashes kept: at most ``MAX_HASHES_PER_S`` per second, shortest spans first."""
    if frames.size == 0:
        return np.zeros(0, np.int64)
    window = frames.astype(np.int64) // round(1.0 / FRAME_S)
    order = np.lexsort((spans, window))
    w_sorted = window[order]
    rank = np.arange(w_sorted.size) - np.searchsorted(w_sorted, w_sorted, side="left")
    return np.sort(order[rank < MAX_HASHES_PER_S])


def fingerprint_samples(samples: np.ndarray, block_samples: int = 4 * SAMPLE_RATE_HZ) -> AudioFingerprint:
    """Fingerprint mono float samples already at ``SAMPLE_RATE_HZ`` (the pure core of ``KIND.fingerprint``)."""
    peaks = PeakStream()
    for start in range(0, samples.size, block_samples):
        peaks.feed(samples[start : start + block_samples])
    return fingerprint_stream(peaks)
