"""Spectral-peak landmarks (Wang 2003, "An Industrial-Strength Audio Search Algorithm"; audfprint).

Steps, all vectorised with numpy/scipy:

1. STFT of 8 kHz mono audio: 64 ms Hann windows every 32 ms, power in dB (``PeakStream``, streamed in blocks
   so a four-hour file never holds its whole spectrogram in memory).
2. Peaks: points that are the maximum of their time-frequency neighbourhood, stand ``PROMINENCE_DB`` above
   the mean power of nearby frequencies in the same frame (flat spectra such as clicks, white noise or
   dither give almost none), rise ``CONTRAST_DB`` above their own bin nearby in time (a steady tone gives
   none) and pass an absolute floor (silence gives none).
3. Density: at most ``PEAKS_PER_S`` peaks per second are kept, the most prominent ones.
4. Hashes: each peak (the anchor) is paired with the next ``FANOUT`` peaks in its target zone; a pair
   ``(f1, f2 - f1, t2 - t1)`` packs into a 21-bit value stored as uint32, together with the anchor's frame.

The peak list is kept as well: a later, pitch/tempo-robust version (Panako-style triplets) can re-hash it.
This module imports nothing from PyAV, Flask or Celery.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from shared.kinds.audio.decode import SAMPLE_RATE_HZ

N_FFT = 512
HOP = 256
FRAME_S = HOP / SAMPLE_RATE_HZ
#: Bins below ~47 Hz carry hum and DC, not music.
MIN_BIN = 3
#: f1 is stored in 8 bits: bins 3..255 (47 Hz - 3.98 kHz).
MAX_BIN = 255
#: Peak neighbourhood half-widths: +-6 frames (+-0.19 s) by +-8 bins (+-125 Hz).
PEAK_HALF_T = 6
PEAK_HALF_F = 8
#: Background (mean power over +-16 bins, +-250 Hz, in the same frame) half-width, for the prominence test.
BG_HALF_F = 16
PROMINENCE_DB = 10.0
#: ... and this far above the quietest frame within +-PEAK_HALF_T at the same bin.
CONTRAST_DB = 3.0
#: Power of a full-scale sine in its bin is about +42 dB here; the floor sits 72 dB lower.
FLOOR_DB = -30.0
PEAKS_PER_S = 20
#: Target zone: 2..63 frames later (64 ms - 2 s), within +-63 bins (+-984 Hz); FANOUT pairs per anchor.
MIN_DT = 2
MAX_DT = 63
MAX_DF = 63
FANOUT = 3
#: Frames of context each side that the peak picker needs.
_HALO = PEAK_HALF_T
_WINDOW = np.hanning(N_FFT + 2)[1:-1].astype(np.float32)


def _power_db(samples: np.ndarray) -> np.ndarray:
    """Power spectrogram in dB, shape (frames, N_FFT // 2 + 1), of complete frames in ``samples``."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP]
    spec = np.fft.rfft(frames * _WINDOW, axis=1)
    power = spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2
    return 10.0 * np.log10(power + 1e-10)


def _pick_peaks(db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (frame, bin, prominence_db) of the peaks of a dB spectrogram block."""
    local_max = ndimage.maximum_filter(db, size=(2 * PEAK_HALF_T + 1, 2 * PEAK_HALF_F + 1), mode="nearest")
    # Prominence is measured along frequency only, within the frame: a flat spectrum (a click, a broadband
    # onset, white noise on average) has no peaks however loud it is compared with its neighbours in time.
    mean_power = ndimage.uniform_filter1d(10.0 ** (db / 10.0), size=2 * BG_HALF_F + 1, axis=1, mode="nearest")
    prominence = db - 10.0 * np.log10(mean_power + 1e-10)
    # A peak must also stand out in time at its own frequency (an onset or a change): a stationary tone
    # would otherwise give "peaks" wherever rounding noise puts a maximum.
    contrast = db - ndimage.minimum_filter1d(db, size=2 * PEAK_HALF_T + 1, axis=0, mode="nearest")
    is_peak = (db >= local_max) & (prominence >= PROMINENCE_DB) & (contrast >= CONTRAST_DB) & (db >= FLOOR_DB)
    is_peak[:, :MIN_BIN] = False
    is_peak[:, MAX_BIN + 1 :] = False
    t, f = np.nonzero(is_peak)
    return t, f, prominence[t, f]


class PeakStream:
    """Feed 8 kHz samples in blocks; collects peaks with global frame indices. Call ``finish`` once."""

    def __init__(self) -> None:
        self._samples = np.zeros(0, dtype=np.float32)
        self._db = np.zeros((0, N_FFT // 2 + 1), dtype=np.float32)
        self._db_start = 0  # global frame index of self._db[0]
        self._done_to = 0  # global frame index up to which peaks are final
        self._peaks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_samples = 0

    def feed(self, block: np.ndarray) -> None:
        self.n_samples += block.size
        self._samples = np.concatenate([self._samples, block.astype(np.float32, copy=False)])
        n_frames = 0 if self._samples.size < N_FFT else 1 + (self._samples.size - N_FFT) // HOP
        if n_frames:
            self._db = np.concatenate([self._db, _power_db(self._samples[: (n_frames - 1) * HOP + N_FFT])])
            self._samples = self._samples[n_frames * HOP :]
        if self._db.shape[0] >= 8 * _HALO:
            self._process(final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (frame uint32, bin uint16, prominence float32) of all peaks, in time order."""
        if self._samples.size and self.n_samples < N_FFT:  # too short for one frame: zero-pad it
            self._db = _power_db(np.pad(self._samples, (0, N_FFT - self._samples.size)))
        self._process(final=True)
        if not self._peaks:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint16), np.zeros(0, np.float32)
        t, f, p = (np.concatenate(parts) for parts in zip(*self._peaks, strict=True))
        return t.astype(np.uint32), f.astype(np.uint16), p.astype(np.float32)

    def _process(self, final: bool) -> None:
        # Peaks are final for frames whose whole neighbourhood is in the buffer: all of them at the end,
        # else all but the last _HALO. The buffer then keeps _HALO frames of context before _done_to.
        end = self._db_start + self._db.shape[0]
        upto = end if final else end - _HALO
        if upto <= self._done_to:
            return
        t, f, p = _pick_peaks(self._db)
        t = t + self._db_start
        keep = (t >= self._done_to) & (t < upto)
        self._peaks.append((t[keep], f[keep], p[keep]))
        self._done_to = upto
        drop = max(0, self._done_to - _HALO - self._db_start)
        self._db = self._db[drop:]
        self._db_start += drop


def limit_density(t: np.ndarray, f: np.ndarray, prominence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the ``PEAKS_PER_S`` most prominent peaks in each one-second window; return them in time order."""
    if t.size == 0:
        return t, f
    frames_per_window = round(1.0 / FRAME_S)
    window = t.astype(np.int64) // frames_per_window
    order = np.lexsort((-prominence, window))  # by window, then most prominent first
    w_sorted = window[order]
    first_in_window = np.searchsorted(w_sorted, w_sorted, side="left")
    rank = np.arange(w_sorted.size) - first_in_window
    kept = np.sort(order[rank < PEAKS_PER_S])
    # Ties (same frame) are ordered by bin so hashing is deterministic.
    kept = kept[np.lexsort((f[kept], t[kept]))]
    return t[kept], f[kept]


def hash_peaks(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair peaks (sorted by time) into landmark hashes; return (hash uint32, anchor frame uint32).

    Hash layout, 21 bits: ``f1`` (8 bits) | ``f2 - f1 + 63`` (7 bits) | ``t2 - t1`` (6 bits).
    """
    n = t.size
    if n < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    ti, fi = t.astype(np.int64), f.astype(np.int64)
    # Candidates are the next `lookahead` peaks in time order; at <= PEAKS_PER_S peaks/s the zone of
    # MAX_DT frames (2 s) holds at most ~2 * PEAKS_PER_S of them.
    lookahead = min(n - 1, 2 * PEAKS_PER_S + 8)
    idx = np.arange(n)[:, None] + np.arange(1, lookahead + 1)[None, :]
    valid = idx < n
    idx = np.minimum(idx, n - 1)
    dt = ti[idx] - ti[:, None]
    df = fi[idx] - fi[:, None]
    valid &= (dt >= MIN_DT) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
    valid &= np.cumsum(valid, axis=1) <= FANOUT
    anchor, col = np.nonzero(valid)
    hashes = (fi[anchor] << 13) | ((df[anchor, col] + MAX_DF) << 6) | dt[anchor, col]
    return hashes.astype(np.uint32), ti[anchor].astype(np.uint32)
