"""Per-frame work on small grayscale frames: black-bar detection and the 256-bit DCT frame hash.

The hash follows PDQ (Facebook, "The TMK+PDQF and PDQ algorithms", 2019; ThreatExchange ``pdq/``): luma
downsampled to 64x64, a 2-D DCT, the 16x16 block of the lowest frequencies *excluding* DC (PDQ uses
frequencies 1..16 in each axis), one bit per coefficient. PDQ thresholds at the block's median; we threshold
at zero (the sign). With DC excluded the median of these coefficients is close to zero anyway, so the bits
stay balanced, and the sign has an exact symmetry the median lacks: mirroring a frame left-right multiplies
the coefficient of horizontal frequency v by (-1)^v, so the hash of a mirrored frame is the hash XOR
``FLIP_MASK`` (the odd-v bits). Flip-invariant matching then costs nothing (see ``shared.align``).

Letterbox and pillarbox bars are found with a luma threshold on rows and columns, voted over several frames
(FIELD_NOTES, "Letterboxing": without the crop PDQ is 100-126 bits off, after it 0-4).

This module imports numpy and OpenCV only; nothing here knows about PyAV.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

HASH_SIZE = 64  # luma side fed to the DCT
HASH_BITS = 256
#: Frames whose 64x64 luma has a smaller standard deviation are black, blank or near-blank.
MIN_INFO_STD = 4.0
#: A row or column is a bar when its mean and its maximum luma are at most these (limited-range black is 16).
BAR_MEAN_MAX = 28.0
BAR_PEAK_MAX = 48.0
#: Bars thinner than this fraction of the side are ignored; crops leaving less than MIN_KEEP are refused.
MIN_BAR_FRACTION = 0.02
MIN_KEEP_FRACTION = 0.4


def _flip_mask() -> np.ndarray:
    v = np.arange(1, 17)  # horizontal frequency of each block column
    odd = np.broadcast_to((v % 2 == 1)[None, :], (16, 16))
    return np.packbits(odd.reshape(-1))


#: XOR this onto a frame hash to get the hash of the left-right mirrored frame.
FLIP_MASK = _flip_mask()


@dataclass(frozen=True)
class Crop:
    """Rows/columns to drop from each side, in pixels of the frame it was measured on."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def apply(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        return frame[self.top : h - self.bottom, self.left : w - self.right]

    def scaled(self, sx: float, sy: float) -> Crop:
        """The same crop on a frame ``sx`` times wider and ``sy`` times taller."""
        return Crop(
            round(self.top * sy), round(self.bottom * sy), round(self.left * sx), round(self.right * sx)
        )


def _bar_length(mean: np.ndarray, peak: np.ndarray) -> int:
    """How many leading entries are dark enough to be a bar."""
    dark = (mean <= BAR_MEAN_MAX) & (peak <= BAR_PEAK_MAX)
    return int(dark.size if dark.all() else np.argmin(dark))


def measure_bars(gray: np.ndarray) -> Crop | None:
    """The black bars of one frame, or ``None`` when the frame cannot tell (black, blank or all dark)."""
    if float(gray.std()) < MIN_INFO_STD:
        return None
    g = gray.astype(np.float32)
    row_mean, row_peak = g.mean(axis=1), g.max(axis=1)
    col_mean, col_peak = g.mean(axis=0), g.max(axis=0)
    top = _bar_length(row_mean, row_peak)
    if top >= g.shape[0]:
        return None
    bottom = _bar_length(row_mean[::-1], row_peak[::-1])
    left = _bar_length(col_mean, col_peak)
    right = _bar_length(col_mean[::-1], col_peak[::-1])
    return Crop(top, bottom, left, right)


def choose_crop(measured: list[Crop], height: int, width: int) -> Crop:
    """The most common bar size per side over several frames, without tiny bars or absurd crops."""
    if not measured:
        return Crop()

    def side(values: list[int], length: int) -> int:
        value, _ = Counter(values).most_common(1)[0]
        return value if value >= MIN_BAR_FRACTION * length else 0

    top = side([c.top for c in measured], height)
    bottom = side([c.bottom for c in measured], height)
    left = side([c.left for c in measured], width)
    right = side([c.right for c in measured], width)
    if height - top - bottom < MIN_KEEP_FRACTION * height:
        top = bottom = 0
    if width - left - right < MIN_KEEP_FRACTION * width:
        left = right = 0
    return Crop(top, bottom, left, right)


def frame_hash(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """The 32-byte hash of a (cropped) grayscale frame and whether the frame carries information."""
    small = cv2.resize(gray, (HASH_SIZE, HASH_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    informative = float(small.std()) >= MIN_INFO_STD
    coefficients = cv2.dct(small)[1:17, 1:17]  # rows: vertical frequency, columns: horizontal frequency
    bits = np.packbits((coefficients > 0).reshape(-1))
    if not informative:
        return np.zeros(HASH_BITS // 8, np.uint8), False
    if not bits.any():  # the all-zero hash marks "no information" in the stored form; keep them apart
        bits[-1] = 1
    return bits, True


def distinct_count(hashes: np.ndarray, informative: np.ndarray, change_bits: int) -> int:
    """How many informative samples differ by more than ``change_bits`` from the last one counted.

    A static or blank video scores 0 or 1; slow drift still counts, because each sample is compared with the
    last counted one rather than with its neighbour.
    """
    rows = np.unpackbits(hashes[np.asarray(informative, bool)], axis=1).astype(bool)
    if rows.shape[0] == 0:
        return 0
    count, anchor = 1, rows[0]
    for row in rows[1:]:
        if np.count_nonzero(row != anchor) > change_bits:
            count, anchor = count + 1, row
    return count
