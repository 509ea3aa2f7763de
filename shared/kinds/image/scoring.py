"""Compare two ``ImageFingerprint`` values: best dihedral alignment, a calibrated score, confidence.

Role: pure arithmetic on fingerprints. Imports nothing from Flask or Celery.

**Distance.** The minimum Hamming distance over the 8 dihedral variants, taken both ways (the source's
as-decoded hash against the target's 8, and the source's 8 against the target's as-decoded hash). The
variants are recomputed with their own median, so both directions can differ by a bit or two; taking
both makes ``compare(a, b)`` and ``compare(b, a)`` score the same.

**Score** (monotone, decreasing in bits): ``1 - (min(d, 90) / 90) ** p`` with ``p`` chosen so that
31.5 bits scores exactly 0.80, the default ``ImageSettings.match_threshold``. So 0 bits -> 1.0,
16 -> 0.93, 31 -> 0.805 (match), 32 -> 0.795 (no match), 48 -> 0.62, 64 -> 0.41, >= 90 -> 0.0. The 31
bits follow PDQ's recommended threshold for the same 256-bit DCT/median construction. Measured on
generated photo-like images: JPEG q30, 0.5x/2x resizes, rotations, mirrors, +20 brightness and
letterbox/padding stay within 10 bits; unrelated pairs never came closer than 96 bits (FIELD_NOTES:
unrelated PDQ pairs ~100+).

**Confidence.**
* ``low``: either side is low-information (blank, near-uniform, two-tone, a plain gradient) or tiny;
  the score cannot be trusted either way. Low-information pairs are also capped at
  ``LOW_INFORMATION_CAP * match_threshold``, so they never match, not even themselves.
* ``high``: a clear decision: <= ``CLEAR_MATCH_BITS`` or >= ``CLEAR_MISMATCH_BITS``.
* ``medium``: in between, where a stronger matcher (local features) would help.
"""

from __future__ import annotations

import math
from typing import Any

from shared.kinds.image.fingerprint import ImageFingerprint
from shared.kinds.image.hashing import DIHEDRALS, INVERSE, hamming_bits
from shared.protocol import Confidence, Match
from shared.settings import ImageSettings

THRESHOLD_BITS = 31.5
THRESHOLD_SCORE = 0.80
ZERO_SCORE_BITS = 90.0
_EXPONENT = math.log(1.0 - THRESHOLD_SCORE) / math.log(THRESHOLD_BITS / ZERO_SCORE_BITS)

CLEAR_MATCH_BITS = 16
CLEAR_MISMATCH_BITS = 64
LOW_INFORMATION_CAP = 0.5


def score_from_bits(bits: float) -> float:
    """Calibrated similarity in [0, 1] from a Hamming distance in bits (see the module docstring)."""
    ratio = min(max(bits, 0.0), ZERO_SCORE_BITS) / ZERO_SCORE_BITS
    return float(1.0 - ratio**_EXPONENT)


def best_alignment(a: ImageFingerprint, b: ImageFingerprint) -> tuple[int, str]:
    """The smallest distance over the dihedral variants, and the transform taking source ``a`` to target ``b``."""
    best_bits, best_name = 257, "identity"
    for k, dihedral in enumerate(DIHEDRALS):
        # b's variant k is hash(D_k(b)); if that equals a, then b is D_k^-1 applied to a.
        bits = hamming_bits(a.hashes[0], b.hashes[k])
        if bits < best_bits:
            best_bits, best_name = bits, DIHEDRALS[INVERSE[k]].name
        bits = hamming_bits(a.hashes[k], b.hashes[0])
        if bits < best_bits:
            best_bits, best_name = bits, dihedral.name
    return best_bits, best_name


def is_low_information(fp: ImageFingerprint, settings: ImageSettings) -> bool:
    return fp.quality < settings.min_quality or fp.detail < settings.min_detail_coefficients


def compare_fingerprints(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings) -> Match:
    bits, transform = best_alignment(a, b)
    score = score_from_bits(bits)
    warnings: list[str] = []
    low_information = False
    for side, fp in (("source", a), ("target", b)):
        if is_low_information(fp, settings):
            low_information = True
            warnings.append(f"low_information_{side}")
        if min(fp.width, fp.height) < settings.tiny_side_px:
            warnings.append(f"tiny_{side}")
    if low_information:
        score = min(score, LOW_INFORMATION_CAP * settings.match_threshold)
    confidence: Confidence
    if warnings:
        confidence = "low"
    elif bits <= CLEAR_MATCH_BITS or bits >= CLEAR_MISMATCH_BITS:
        confidence = "high"
    else:
        confidence = "medium"
    details: dict[str, Any] = {
        "method": "dct256_dihedral",
        "hamming_bits": bits,
        "transform": transform,
        "source": _side_details(a),
        "target": _side_details(b),
    }
    return Match(similarity_score=score, confidence=confidence, warnings=tuple(warnings), details=details)


def _side_details(fp: ImageFingerprint) -> dict[str, Any]:
    return {
        "width": fp.width,
        "height": fp.height,
        "trim_box": list(fp.trim),
        "quality": fp.quality,
        "detail": fp.detail,
    }
