"""Is a stretch of audio tonal? The second half of the low-information guard of ``match``.

A run of aligned triplets is only evidence when its span carries information. The first test is the triplet
rate (``AudioSettings.min_hash_rate_per_s``): white or pink noise, clicks and near-silence give a few random
peaks a second, so even an identical noise file would otherwise align with itself. That test also throws out
calm, sparse music (slow pads, a held chord, a lone flute: 2-8 triplets a second), which was the largest
cause of misses in the benchmark (bench/audio/REPORT.md).

What separates the two is continuity, not rate. A note holds its partials for hundreds of milliseconds, so
the sustain maxima (``peaks``: the two most prominent spectral maxima every 64 ms) of one row reappear,
within a band, in the next; in noise a maximum is a chance fluctuation of one window and the next row's
maxima fall elsewhere. Measured on the benchmark's degenerate signals and generated ones (tests): white
and pink noise continue 0-2% of their rows, clicks 0% (they have no maxima at all). On the excerpts of the
tuning split (5th-95th percentile): Wesnoth 66-95%, Planet Blupi 41-80%, speech 27-63%, Frets on Fire rock
9-72% (dense: it passes the rate test anyway); the low-rate Blupi passages that the rate test dropped,
36-84%; on the evaluation split, a track of plucked notes (Planet Blupi ``music008``) 20-29%.
``AudioSettings.min_continued_share`` (0.10 since the fifth pass, 0.25 before: 0.25 lost that track's
copies, 0.15 kept all but two more than 0.10 and 0.05, which scored alike, and a fresh split of unseen recordings checked the choice) sits
between the two, five times noise's highest share. Steady tones are continuous too, but a tone gives no onset
peak and so no triplet, and this test only ever relaxes the rate floor for a run the triplets already made.

This module imports only numpy; it knows nothing of PyAV, Flask or Celery.
"""

from __future__ import annotations

import numpy as np

from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.peaks import SUSTAIN_EVERY, SUSTAIN_PER_FRAME

#: A sustain maximum continues when the next row has one within this many bands (1/24 octave each).
CONTINUE_BANDS = 1


def continued_share(fp: AudioFingerprint, start_frame: float, end_frame: float) -> float:
    """Share of the 64 ms sustain rows in ``[start_frame, end_frame]`` whose maxima continue from the row before.

    Rows without any maximum (pauses, noise with no prominent band) count as not continued.
    """
    rows = fp.sustain.reshape(-1, SUSTAIN_PER_FRAME).astype(np.int16)
    first = max(int(start_frame // SUSTAIN_EVERY), 1)
    last = min(int(end_frame // SUSTAIN_EVERY) + 1, rows.shape[0])
    if last - first < 2:
        return 0.0
    return float(_continues(rows[first:last], rows[first - 1 : last - 1]).mean())


def continued_rows(fp: AudioFingerprint) -> np.ndarray:
    """Per 64 ms sustain row: whether its maxima continue from the row before (the first row: False)."""
    rows = fp.sustain.reshape(-1, SUSTAIN_PER_FRAME).astype(np.int16)
    out = np.zeros(rows.shape[0], dtype=bool)
    out[1:] = _continues(rows[1:], rows[:-1])
    return out


def _continues(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    near = np.abs(cur[:, :, None] - prev[:, None, :]) <= CONTINUE_BANDS
    near &= (cur > 0)[:, :, None] & (prev > 0)[:, None, :]
    return near.any(axis=(1, 2))
