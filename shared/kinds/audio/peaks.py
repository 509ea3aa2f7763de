"""Spectral peaks on a log-frequency spectrogram, streamed (the first stage of the Panako-style fingerprint).

Steps, all vectorised with numpy/scipy:

1. STFT of 8 kHz mono audio: 128 ms Hann windows every 16 ms (``HOP``), power spectrum.
2. Log-frequency bands: triangular filters ``BANDS_PER_OCTAVE`` to the octave from ``MIN_HZ`` to ``MAX_HZ``
   (a constant-Q approximation from one FFT, as in Brown 1991 / Schörkhuber & Klapuri 2010 "Constant-Q
   transform toolbox"). On this axis a pitch shift by a factor ``p`` is a translation by
   ``BANDS_PER_OCTAVE * log2(p)`` bands, so *differences* of band positions do not change (Six & Leman,
   "Panako", ISMIR 2014; Six 2021, "Panako: a scalable audio search system", JOSS).
3. Peaks: points that are the maximum of their time-band neighbourhood, stand ``PROMINENCE_DB`` above the
   mean power of nearby bands in the same frame (flat spectra such as clicks, white or pink noise give
   almost none), rise ``CONTRAST_DB`` above the quietest value of their own band nearby in time (a steady
   tone gives none) and pass an absolute floor (silence gives none).
4. Each peak's band position is refined to a fraction of a band by a parabola through the neighbouring
   bands (dB), so band differences survive a pitch shift that is not a whole number of bands.
5. Density: at most ``EDGE_PEAKS_PER_S`` peaks per second are kept for edge refinement and the
   ``PEAKS_PER_S`` most prominent of those for hashing (``limit_density``).
6. Sustain maxima: every 64 ms, the two most prominent spectral maxima of the frame, without the onset
   test. They are too unselective to hash, but they let ``edges`` see a held chord or vowel that started
   before an excerpt's cut, so a segment can start at the cut rather than at the next onset.
7. Frame rows, on the same 64 ms grid: the frame's loudness (one byte) and 16 bits of its spectral shape
   (whether each quarter-octave band is louder than the one below), three times over, on coarse bands
   offset by 0, 2 and 4 log bands (so that any pitch shift maps one set onto another within a log band).
   ``edges`` compares them along a fitted line to place segment edges to within a row, also inside pauses
   and quiet passages where there is no peak at all, and ``match`` counts agreeing rows as evidence.

``PeakStream`` is fed blocks of samples and keeps only a few frames of context, so memory stays flat on
hours-long inputs. This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage

from shared.kinds.audio.decode import SAMPLE_RATE_HZ

N_FFT = 1024
HOP = 128
FRAME_S = HOP / SAMPLE_RATE_HZ
BANDS_PER_OCTAVE = 24
MIN_HZ = 200.0
MAX_HZ = 3800.0
N_BANDS = int(np.floor(BANDS_PER_OCTAVE * np.log2(MAX_HZ / MIN_HZ))) + 1
#: Peak neighbourhood half-widths: +-10 frames (+-0.16 s) by +-4 bands (+-1/6 octave).
PEAK_HALF_T = 10
PEAK_HALF_F = 4
#: Background for the prominence test: mean power over +-8 bands (+-1/3 octave) in the same frame.
BG_HALF_F = 8
PROMINENCE_DB = 6.0
CONTRAST_DB = 3.0
#: A full-scale sine gives about +48 dB in its band; the floor sits ~80 dB lower.
FLOOR_DB = -35.0
PEAKS_PER_S = 10
#: Peaks kept for refining segment edges (``edges``): twice as many, so an excerpt's first notes survive
#: next to louder filler in the same window.
EDGE_PEAKS_PER_S = 16
#: Sustain maxima (for edges): every SUSTAIN_EVERY frames (64 ms), the SUSTAIN_PER_FRAME most prominent
#: spectral maxima of the frame, without the onset test, so a held chord is still seen after its onset.
SUSTAIN_EVERY = 4
SUSTAIN_PER_FRAME = 2
#: Frame rows (for edges), one per sustain row (64 ms): the frame's loudness in dB (u8, 1 dB steps, offset
#: ``ROW_DB_OFFSET``) and 16 bits of spectral shape: bit k says whether coarse band k + 1 (``ROW_BAND_WIDTH``
#: log bands, a quarter octave) is louder than coarse band k (Haitsma & Kalker 2002 use such energy-difference
#: signs; here across bands only, so a held note gives stable bits).
ROW_BAND_WIDTH = 6
ROW_BITS = 16
ROW_DB_OFFSET = 120.0
#: The shape bits are computed three times, on coarse bands starting 0, 2 and 4 log bands up (16, 15 and 15
#: bits), so a pitch shift is always within 1 log band of moving whole coarse bands from the first set to one
#: of the sets (``edges._Rows``); with one set, a shift of +-5% or +-10% fell half a coarse band off and
#: flipped many bits. A row is ``ROW_BYTES`` bytes: loudness, then each set's bits, low byte first.
ROW_OFFSETS = (0, 2, 4)
ROW_BYTES = 1 + 2 * len(ROW_OFFSETS)
#: Frames of context each side that the peak picker needs.
_HALO = PEAK_HALF_T + 1
_WINDOW = np.hanning(N_FFT + 2)[1:-1].astype(np.float32)


def _band_matrix() -> np.ndarray:
    """(N_FFT//2+1, N_BANDS) triangular weights on log2 frequency, each band normalised to unit sum."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE_HZ)
    with np.errstate(divide="ignore"):
        pos = BANDS_PER_OCTAVE * np.log2(np.maximum(freqs, 1e-6) / MIN_HZ)  # band position of each FFT bin
    centres = np.arange(N_BANDS, dtype=np.float64)
    # Half-width of one band, but at least one FFT bin at the low end, where bins are wider than bands.
    bin_width = BANDS_PER_OCTAVE * np.log2(1.0 + (SAMPLE_RATE_HZ / N_FFT) / (MIN_HZ * 2 ** (centres / BANDS_PER_OCTAVE)))
    half = np.maximum(1.0, bin_width)
    w = np.clip(1.0 - np.abs(pos[:, None] - centres[None, :]) / half[None, :], 0.0, None)
    return (w / w.sum(axis=0, keepdims=True)).astype(np.float32)


_BANDS = _band_matrix()


def band_db(samples: np.ndarray) -> np.ndarray:
    """Log-band power in dB, shape (frames, N_BANDS), of the complete frames in ``samples``."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP]
    # scipy's pocketfft: 4x faster than numpy's on these (frames, 1024) float32 batches; the same transform,
    # results differ from numpy's in the last float32 bits only (fingerprints of test MP3s are identical).
    spec = fft.rfft(frames * _WINDOW, axis=1)
    power = (spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2) @ _BANDS
    return 10.0 * np.log10(power + 1e-10)


def _pick_peaks(db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (frame, refined band position, prominence_db) of the peaks of a dB log-band block."""
    local_max = ndimage.maximum_filter(db, size=(2 * PEAK_HALF_T + 1, 2 * PEAK_HALF_F + 1), mode="nearest")
    mean_power = ndimage.uniform_filter1d(10.0 ** (db / 10.0), size=2 * BG_HALF_F + 1, axis=1, mode="nearest")
    prominence = db - 10.0 * np.log10(mean_power + 1e-10)
    contrast = db - ndimage.minimum_filter1d(db, size=2 * PEAK_HALF_T + 1, axis=0, mode="nearest")
    is_peak = (db >= local_max) & (prominence >= PROMINENCE_DB) & (contrast >= CONTRAST_DB) & (db >= FLOOR_DB)
    is_peak[:, 0] = is_peak[:, -1] = False  # the parabola needs both neighbours
    t, f = np.nonzero(is_peak)
    left, mid, right = db[t, f - 1], db[t, f], db[t, f + 1]
    curvature = left - 2.0 * mid + right
    delta = np.where(curvature < 0, 0.5 * (left - right) / np.minimum(curvature, -1e-6), 0.0)
    return t, f + np.clip(delta, -0.5, 0.5), prominence[t, f]


def _sustain_maxima(db: np.ndarray) -> np.ndarray:
    """(frames, SUSTAIN_PER_FRAME) uint8: band + 1 of each frame's most prominent spectral maxima (0: none)."""
    local_max = ndimage.maximum_filter1d(db, size=2 * PEAK_HALF_F + 1, axis=1, mode="nearest")
    mean_power = ndimage.uniform_filter1d(10.0 ** (db / 10.0), size=2 * BG_HALF_F + 1, axis=1, mode="nearest")
    prominence = db - 10.0 * np.log10(mean_power + 1e-10)
    ok = (db >= local_max) & (prominence >= PROMINENCE_DB) & (db >= FLOOR_DB)
    score = np.where(ok, prominence, -np.inf)
    top = np.argsort(-score, axis=1, kind="stable")[:, :SUSTAIN_PER_FRAME]
    valid = np.isfinite(np.take_along_axis(score, top, axis=1))
    return np.where(valid, top + 1, 0).astype(np.uint8)


def row_bits(offset: int) -> int:
    """Shape bits of the set whose coarse bands start ``offset`` log bands up (16 at 0, 15 at 2 and 4)."""
    return min(ROW_BITS + 1, (N_BANDS - offset) // ROW_BAND_WIDTH) - 1


def _frame_rows(db: np.ndarray) -> np.ndarray:
    """(frames, ``ROW_BYTES``) uint8: loudness (dB + ``ROW_DB_OFFSET``), then the shape bits of each offset set."""
    power = 10.0 ** (db.astype(np.float64) / 10.0)
    loud = np.clip(np.round(10.0 * np.log10(power.sum(axis=1) + 1e-10) + ROW_DB_OFFSET), 0, 255)
    columns = [loud]
    for offset in ROW_OFFSETS:
        n_coarse = row_bits(offset) + 1
        band = power[:, offset : offset + n_coarse * ROW_BAND_WIDTH]
        coarse = band.reshape(power.shape[0], n_coarse, ROW_BAND_WIDTH).sum(axis=2)
        bits = (coarse[:, 1:] > coarse[:, :-1]).astype(np.uint32)
        shape = (bits << np.arange(n_coarse - 1, dtype=np.uint32)).sum(axis=1)
        columns += [shape & 0xFF, shape >> 8]
    return np.stack(columns, axis=1).astype(np.uint8)


class PeakStream:
    """Feed 8 kHz samples in blocks; collects peaks with global frame indices. Call ``finish`` once."""

    def __init__(self) -> None:
        self._samples = np.zeros(0, dtype=np.float32)
        self._db = np.zeros((0, N_BANDS), dtype=np.float32)
        self._db_start = 0  # global frame index of self._db[0]
        self._done_to = 0  # global frame index up to which peaks are final
        self._peaks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._sustain: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self.n_samples = 0

    def feed(self, block: np.ndarray) -> None:
        self.n_samples += block.size
        self._samples = np.concatenate([self._samples, block.astype(np.float32, copy=False)])
        n_frames = 0 if self._samples.size < N_FFT else 1 + (self._samples.size - N_FFT) // HOP
        if n_frames:
            self._db = np.concatenate([self._db, band_db(self._samples[: (n_frames - 1) * HOP + N_FFT])])
            self._samples = self._samples[n_frames * HOP :]
        if self._db.shape[0] >= 8 * _HALO:
            self._process(final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (frame int64, band position float64, prominence float32) of all peaks, in time order."""
        if self._samples.size and self.n_samples < N_FFT:  # too short for one frame: zero-pad it
            self._db = band_db(np.pad(self._samples, (0, N_FFT - self._samples.size)))
        self._process(final=True)
        if not self._peaks:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.float32)
        t, f, p = (np.concatenate(parts) for parts in zip(*self._peaks, strict=True))
        return t.astype(np.int64), f.astype(np.float64), p.astype(np.float32)

    def sustain(self) -> np.ndarray:
        """After ``finish``: (ceil(frames / SUSTAIN_EVERY), SUSTAIN_PER_FRAME) uint8 sustain maxima."""
        if not self._sustain:
            return np.zeros((0, SUSTAIN_PER_FRAME), np.uint8)
        return np.concatenate(self._sustain)

    def rows(self) -> np.ndarray:
        """After ``finish``: (ceil(frames / SUSTAIN_EVERY), ROW_BYTES) uint8 frame rows (see ``_frame_rows``)."""
        if not self._rows:
            return np.zeros((0, ROW_BYTES), np.uint8)
        return np.concatenate(self._rows)

    def _process(self, final: bool) -> None:
        # Peaks are final for frames whose whole neighbourhood is in the buffer: all of them at the end,
        # else all but the last _HALO. The buffer then keeps _HALO frames of context before _done_to.
        end = self._db_start + self._db.shape[0]
        upto = end if final else end - _HALO
        if upto <= self._done_to or self._db.shape[0] == 0:
            return
        t, f, p = _pick_peaks(self._db)
        t = t + self._db_start
        keep = (t >= self._done_to) & (t < upto)
        self._peaks.append((t[keep], f[keep], p[keep]))
        first = -(-self._done_to // SUSTAIN_EVERY) * SUSTAIN_EVERY  # next sampled frame at or after _done_to
        rows = np.arange(first, upto, SUSTAIN_EVERY) - self._db_start
        self._sustain.append(_sustain_maxima(self._db[rows]))
        self._rows.append(_frame_rows(self._db[rows]))
        self._done_to = upto
        drop = max(0, self._done_to - _HALO - self._db_start)
        self._db = self._db[drop:]
        self._db_start += drop


def limit_density(t: np.ndarray, f: np.ndarray, prominence: np.ndarray, per_s: int = PEAKS_PER_S) -> np.ndarray:
    """Indices of the ``per_s`` most prominent peaks in each one-second window, in time order."""
    if t.size == 0:
        return np.zeros(0, np.int64)
    frames_per_window = round(1.0 / FRAME_S)
    window = t // frames_per_window
    order = np.lexsort((-prominence, window))  # by window, then most prominent first
    w_sorted = window[order]
    first_in_window = np.searchsorted(w_sorted, w_sorted, side="left")
    rank = np.arange(w_sorted.size) - first_in_window
    kept = order[rank < per_s]
    return kept[np.lexsort((f[kept], t[kept]))]  # time order; ties by band, so hashing is deterministic
