"""Per-frame work on small grayscale frames: black-bar detection and the 224-bit DCT frame hash.

The hash follows PDQ (Facebook, "The TMK+PDQF and PDQ algorithms", 2019; ThreatExchange ``pdq/``): luma
downsampled to 64x64, a 2-D DCT, the 16x16 block of the lowest frequencies *excluding* DC (PDQ uses
frequencies 1..16 in each axis), one bit per coefficient. PDQ thresholds at the block's median; we threshold
at zero (the sign). With DC excluded the median of these coefficients is close to zero anyway, so the bits
stay balanced, and the sign has an exact symmetry the median lacks: mirroring a frame left-right multiplies
the coefficient of horizontal frequency v by (-1)^v, so the hash of a mirrored frame is the hash XOR
``FLIP_MASK`` (the odd-v bits). Flip-invariant matching then costs nothing (see ``shared.align``). Unlike
PDQ, the 64x64 frame is multiplied by a symmetric Hann window first (``WINDOW``), for mild crops and overlays.

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
#: Bits kept per frame: the 16x16 block minus its 32 highest-frequency coefficients (the least robust ones),
#: so that a raw row is 28 bytes and two samples a second stay under the 64 B/s budget even uncompressed.
HASH_BITS = 224
HASH_BYTES = HASH_BITS // 8
#: Frames whose 64x64 luma has a smaller standard deviation are black, blank or near-blank.
MIN_INFO_STD = 4.0
#: A row or column is a bar when its median luma is at most BAR_MEAN_MAX (limited-range black is 16) and at
#: least BAR_DARK_SHARE of its pixels are at most BAR_PEAK_MAX: a channel logo or caption drawn over a bar
#: (a minority of its pixels) does not make it content, while a grey, coloured or textured border is never
#: black enough to be cropped.
BAR_MEAN_MAX = 28.0
BAR_PEAK_MAX = 48.0
BAR_DARK_SHARE = 0.6
#: Bars thinner than this fraction of the side are ignored; crops leaving less than MIN_KEEP are refused.
MIN_BAR_FRACTION = 0.02
MIN_KEEP_FRACTION = 0.4


def _window() -> np.ndarray:
    hann = np.hanning(HASH_SIZE + 2)[1:-1]  # strictly positive, symmetric: mirroring commutes with it
    return np.outer(hann, hann).astype(np.float32)


#: A 2-D Hann window applied before the DCT. A crop-and-rescale moves content most at the frame edges (a 10%
#: crop shifts the edges by 5-7% of the width, enough to flip the sign of every coefficient above ~5 cycles)
#: and barely at the centre; logos and captions sit near the edges too. On the benchmark's tuning frames the
#: window brought a 10% crop from a median 88 to 58 bits and a 5% crop from 48 to 28, while unrelated frames
#: stay as far apart. Being symmetric, it keeps the exact mirror relation (``FLIP_MASK``).
WINDOW = _window()


def _bit_order() -> np.ndarray:
    """Coefficient order of the hash bits: by ``max(u, v)``, so the first 64 bits are the 8x8 lowest
    frequencies, the ones that survive crops, overlays and low bitrates best (``shared.align`` prefilters
    candidate pairs on them)."""
    u, v = np.divmod(np.arange(256), 16)
    return np.lexsort((v, u, np.maximum(u, v)))[:HASH_BITS]


#: Flat indices into the 16x16 coefficient block (rows: vertical frequency 1..16, columns: horizontal).
BIT_ORDER = _bit_order()
#: The hash's leading bytes that ``shared.align`` may prefilter on (the 8x8 lowest frequencies).
ROBUST_BYTES = 8


def _flip_mask() -> np.ndarray:
    v = np.arange(1, 17)  # horizontal frequency of each block column
    odd = np.broadcast_to((v % 2 == 1)[None, :], (16, 16))  # then the kept bits, in hash order
    return np.packbits(odd.reshape(-1)[BIT_ORDER])


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


def _bar_length(median: np.ndarray, dark_share: np.ndarray) -> int:
    """How many leading entries are dark enough to be a bar."""
    dark = (median <= BAR_MEAN_MAX) & (dark_share >= BAR_DARK_SHARE)
    return int(dark.size if dark.all() else np.argmin(dark))


def measure_bars(gray: np.ndarray) -> Crop | None:
    """The black bars of one frame, or ``None`` when the frame cannot tell (black, blank or all dark)."""
    if float(gray.std()) < MIN_INFO_STD:
        return None
    g = gray.astype(np.float32)
    dark = gray <= BAR_PEAK_MAX
    row_mean, row_peak = np.median(g, axis=1), dark.mean(axis=1)
    col_mean, col_peak = np.median(g, axis=0), dark.mean(axis=0)
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
    """The 28-byte hash of a (cropped) grayscale frame and whether the frame carries information."""
    small = cv2.resize(gray, (HASH_SIZE, HASH_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    informative = float(small.std()) >= MIN_INFO_STD
    centred = (small - small.mean()) * WINDOW  # see WINDOW: edges, where crops and logos act, weigh less
    coefficients = cv2.dct(centred)[1:17, 1:17]  # rows: vertical frequency, columns: horizontal frequency
    bits = np.packbits((coefficients > 0).reshape(-1)[BIT_ORDER])
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
