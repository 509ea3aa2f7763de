"""Compare two ``ImageFingerprint`` values: global dihedral hash, then local geometry; one calibrated score.

Role: pure arithmetic on fingerprints. Imports nothing from Flask or Celery.

**Global stage (fast path).** The minimum Hamming distance over the 8 dihedral variants, taken both ways
(source as decoded against the target's 8, and the reverse), so ``compare(a, b)`` and ``compare(b, a)``
agree. Its score is ``1 - (min(d, 90) / 90) ** p`` with ``p`` putting 31.5 bits at exactly 0.80 (PDQ's
threshold of 31 for the same 256-bit DCT/median construction): 0 bits -> 1.0, 16 -> 0.93, 31 -> 0.805.
When ``d <= local_skip_below_bits`` the decision is clear and the local stage is skipped; so it is when the
global score reaches ``local_max_score``, which no local evidence exceeds (``compare_or_bound`` relies on
the same cap: a catalog search skips candidates that cannot reach its top K).

**Insets** (``best_inset``): each side's insets (pictures found inside it, ``inset.py``) are compared with
the other side's 8 dihedral hashes, never with each other's insets; uninformative insets are skipped. The
closest counts as the global distance when it scores higher than the whole images do, and the explanation
then says ``inset_hash`` with the box where the picture sits. The score curve is the same: on the tuning
split's 19,576 ordinary negatives no inset came within 84 bits of the other image.

**Local stage** (``verify.py``): ORB matches, a RANSAC similarity and its sanity checks. Its score is
``top - (top - 0.8) * (n_t - n_0) / (n - n_0)`` for ``n`` verified inliers, with ``n_0 = local_min_inliers
- 1``, ``n_t = local_inliers_at_threshold`` and ``top = local_max_score`` (0.90): 0 below
``local_min_inliers``, exactly 0.80 at ``n_t``, rising towards ``top`` as inliers accumulate. The cap is
deliberate: on the benchmark a stereo pair or a second shot of the same scene reached 40-150 verified
inliers, as many as a real crop, while only near-identical pictures get within ~25 bits globally; so local
evidence ranks above the match threshold but below a near-identical global hash (0.90 is ~24 bits).

**Photometric check** (``photometric.py``), only when the local fit could decide (its confirmed score
beats the global one): the thumbnails, aligned through the fit, are compared block by block. Fewer than
``min_block_agreement`` agreeing blocks: the fit shows the same place, not the same picture (stereo pairs,
video frames, re-shot scenes), and its score is 0. At least ``confirm_block_agreement`` of at least
``confirm_min_blocks`` blocks: the fit is confirmed, and ``confirmed_inliers_at_threshold`` (6) inliers
already score 0.80 (the same curve with a lower ``n_t``, so the score stays monotone in inliers). Too few
informative blocks to judge: the inlier score stands. When the overlap covers fewer than
``confirm_min_blocks`` blocks of 8 px (a copy shown small), the check runs on 4 px blocks, and confirming
then needs ``fine_confirm_min_blocks`` of them.

A fit from the repeated-pattern pass (``LocalEvidence.ambiguous``) counts only when confirmed.

**Whole-frame check** (``photometric.frame_agreement``), only when neither stage reaches 0.80 and the two
trimmed frames have the same aspect ratio: the thumbnails are compared block by block as they are (or
mirrored). For text watermarks on smooth pictures, where the text moves the hash and takes the keypoints.
Each block ignores the ``frame_drop_fraction`` of its pixels that fit worst (the strokes), and when either
side was trimmed the original frames are also aligned through the trim boxes (a watermark can change the
trim), the better of the two counting.
``frame_block_agreement`` (0.80) of the blocks scores 0.80, full agreement ``local_max_score``.

**Score** = the larger of the three. Each is monotone in its evidence (fewer bits, more inliers), so the
maximum is too, and each is calibrated to put its own 1e-4-FPR operating point at 0.80 on the benchmark
(``bench/image/REPORT.md``), so one threshold serves both.

**Confidence.**
* ``low``: either side is low-information (blank, near-uniform, two-tone, a plain gradient) or tiny; the
  score cannot be trusted either way. Low-information pairs are also capped at
  ``LOW_INFORMATION_CAP * match_threshold``, so they never match, not even themselves.
* ``high``: a clear decision, score ``>= high_score`` (0.88: <= 26 bits, >= 30 verified inliers, or >= 10
  inliers that the block check confirms) or ``<= low_score`` (0.50).
* ``medium``: in between. The benchmark report gives the false-positive rate each level stands for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.kinds.image.fingerprint import ImageFingerprint, Inset
from shared.kinds.image.hashing import DIHEDRALS, INVERSE, hamming_bits
from shared.kinds.image.photometric import (
    BLOCK_PX,
    FINE_BLOCK_PX,
    Agreement,
    block_agreement,
    frame_agreement,
    untrimmed_frame_matrix,
)
from shared.kinds.image.verify import LocalEvidence, Neighbours, inlier_bound, verify
from shared.protocol import Confidence, Match
from shared.settings import ImageSettings

THRESHOLD_BITS = 31.5
THRESHOLD_SCORE = 0.80
ZERO_SCORE_BITS = 90.0
_EXPONENT = math.log(1.0 - THRESHOLD_SCORE) / math.log(THRESHOLD_BITS / ZERO_SCORE_BITS)

LOW_INFORMATION_CAP = 0.5
_MIRRORS = ("mirror", "flip", "transpose", "transverse")


def score_from_bits(bits: float) -> float:
    """Calibrated similarity in [0, 1] from a Hamming distance in bits (see the module docstring)."""
    ratio = min(max(bits, 0.0), ZERO_SCORE_BITS) / ZERO_SCORE_BITS
    return float(1.0 - ratio**_EXPONENT)


def score_from_inliers(inliers: int, settings: ImageSettings, confirmed: bool = False) -> float:
    """Calibrated similarity in [0, local_max_score) from a verified inlier count (see the module docstring).

    ``confirmed``: the photometric block check confirmed the fit, so fewer inliers reach the threshold.
    """
    n0 = settings.local_min_inliers - 1
    if inliers <= n0:
        return 0.0
    top = settings.local_max_score
    at_threshold = settings.local_inliers_at_threshold
    if confirmed:
        at_threshold = min(at_threshold, settings.confirmed_inliers_at_threshold)
    span = max(at_threshold - n0, 1e-6)
    return float(min(top, max(0.0, top - (top - THRESHOLD_SCORE) * span / (inliers - n0))))


def score_from_frame(frame: Agreement | None, settings: ImageSettings) -> float:
    """Similarity from the whole-frame block agreement: 0 below ``frame_block_agreement``, 0.80 at it,
    rising linearly to ``local_max_score`` when every informative block agrees."""
    if frame is None or frame.blocks < settings.frame_min_blocks:
        return 0.0
    floor = settings.frame_block_agreement
    if frame.fraction < floor:
        return 0.0
    top = settings.local_max_score
    return float(THRESHOLD_SCORE + (top - THRESHOLD_SCORE) * (frame.fraction - floor) / max(1.0 - floor, 1e-6))


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


@dataclass(frozen=True)
class InsetAlignment:
    """One side's whole image found as a picture inside the other (``inset.py``)."""

    bits: int
    #: How the source was changed to appear in the target's inset (or the target in the source's).
    transform: str
    #: "target" when the target holds the source inside it, "source" for the reverse.
    holder: str
    box: tuple[int, int, int, int]


def best_inset(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings) -> InsetAlignment | None:
    """The closest inset of either side to the other side's whole image, over its 8 dihedral hashes.

    Insets are only compared with the other image as a whole, never with each other's insets, and only
    informative ones count (``min_quality``, ``min_detail_coefficients``).
    """
    best: InsetAlignment | None = None
    for holder, whole, inside in (("target", a, b), ("source", b, a)):
        for inset in inside.insets:
            if is_low_information(inset, settings):
                continue
            for k, dihedral in enumerate(DIHEDRALS):
                bits = hamming_bits(whole.hashes[k], inset.hash)
                if best is None or bits < best.bits:
                    # The whole side's variant k is what the inset shows; seen from the source, the
                    # target's inset holds the source transformed by k, and the source's inset holds
                    # the target transformed by k, i.e. the source transformed by k's inverse.
                    name = dihedral.name if holder == "target" else DIHEDRALS[INVERSE[k]].name
                    best = InsetAlignment(bits, name, holder, inset.box)
    return best


def is_low_information(fp: ImageFingerprint | Inset, settings: ImageSettings) -> bool:
    """Too flat or too simple to be evidence: an image, or a picture found inside one (an inset)."""
    return fp.quality < settings.min_quality or fp.detail < settings.min_detail_coefficients


@dataclass(frozen=True)
class GlobalEvidence:
    """The global stage: the whole images' best dihedral alignment, or an inset when that scores higher."""

    #: Whole image against whole image.
    bits: int
    transform: str
    inset: InsetAlignment | None
    #: What the global score counts: the inset's bits when it scores higher, else ``bits``.
    global_bits: int
    score: float

    def local_may_decide(self, settings: ImageSettings) -> bool:
        """Whether the local (and whole-frame) stages run: they cannot exceed ``local_max_score``, so they
        are skipped once the global score reaches it, and below ``local_skip_below_bits``."""
        return self.global_bits > settings.local_skip_below_bits and self.score < settings.local_max_score


def global_evidence(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings) -> GlobalEvidence:
    bits, transform = best_alignment(a, b)
    inset = best_inset(a, b, settings)
    if inset is not None and score_from_bits(inset.bits) <= score_from_bits(bits):
        inset = None  # the whole images agree at least as well (or neither is evidence at all)
    global_bits = bits if inset is None else inset.bits
    return GlobalEvidence(bits, transform, inset, global_bits, score_from_bits(global_bits))


def compare_or_bound(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings, floor: float) -> Match | float:
    """``compare_fingerprints(a, b)``, or an upper bound of its score when that bound is below ``floor``
    (the catalog search's K-th best score so far: such a candidate cannot enter its top K).

    The bound is the global score when the local stages are skipped; else ``local_max_score`` (which no
    local evidence exceeds) or the global score, the larger; when that does not settle it, the larger of the
    global score, the confirmed inlier score of ``verify.inlier_bound`` (the matches alone, before any
    RANSAC) and, last, the whole-frame score. The first two cost microseconds, the third the
    nearest-neighbour search (kept for the compare), against ~1.5 ms for a full compare."""
    evidence = global_evidence(a, b, settings)
    cap = LOW_INFORMATION_CAP * settings.match_threshold if _low_information(a, b, settings) else 1.0
    if not evidence.local_may_decide(settings):
        bound = min(evidence.score, cap)
        return bound if bound < floor else compare_fingerprints(a, b, settings, evidence)
    bound = min(max(evidence.score, settings.local_max_score), cap)
    if bound < floor:
        return bound
    knn = Neighbours(a.features, b.features)
    most = inlier_bound(a.features, b.features, knn, settings, inliers_to_reach(floor, settings))
    bound = min(max(evidence.score, score_from_inliers(most, settings, confirmed=True)), cap)
    if bound < floor:  # the whole-frame score last: only when the rest cannot reach the floor
        bound = min(max(bound, _frame(a, b, settings)[1]), cap)
    return bound if bound < floor else compare_fingerprints(a, b, settings, evidence, knn)


def inliers_to_reach(score: float, settings: ImageSettings) -> float:
    """The fewest verified inliers whose confirmed score (``score_from_inliers``) reaches ``score``; inf when
    none does (at or above ``local_max_score``)."""
    n0, top = settings.local_min_inliers - 1, settings.local_max_score
    if score >= top:
        return math.inf
    span = max(min(settings.local_inliers_at_threshold, settings.confirmed_inliers_at_threshold) - n0, 1e-6)
    n = max(n0 + 1, math.floor(n0 + (top - THRESHOLD_SCORE) * span / (top - score)) - 1)
    while score_from_inliers(n, settings, confirmed=True) < score:
        n += 1
    return n


def _low_information(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings) -> bool:
    return is_low_information(a, settings) or is_low_information(b, settings)


def compare_fingerprints(
    a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings, evidence: GlobalEvidence | None = None,
    knn: Neighbours | None = None,
) -> Match:
    """The compare (module docstring); ``evidence`` and ``knn``: the global stage and the local stage's
    nearest neighbours, when the caller has them already."""
    if evidence is None:
        evidence = global_evidence(a, b, settings)
    bits, transform, inset = evidence.bits, evidence.transform, evidence.inset
    global_score = evidence.score
    local: LocalEvidence | None = None
    if evidence.local_may_decide(settings):
        local = verify(a.features, b.features, settings, knn)
    local_score = score_from_inliers(local.inliers, settings) if local is not None else 0.0
    agreement: Agreement | None = None
    if local is not None and score_from_inliers(local.inliers, settings, confirmed=True) > global_score:
        # Only when the local fit can decide: is it the same picture, or only the same place?
        agreement = _fit_agreement(a, b, local, settings)
        min_blocks = settings.confirm_min_blocks if agreement.block_px == BLOCK_PX else settings.fine_confirm_min_blocks
        confirmed = agreement.blocks >= min_blocks and agreement.fraction >= settings.confirm_block_agreement
        if agreement.fraction < settings.min_block_agreement or (local.ambiguous and not confirmed):
            local_score = 0.0
        elif confirmed:
            local_score = score_from_inliers(local.inliers, settings, confirmed=True)
    elif local is not None and local.ambiguous:
        local_score = 0.0  # an ambiguous fit never counts unchecked
    frame: Agreement | None = None
    frame_score = 0.0
    if evidence.local_may_decide(settings) and max(global_score, local_score) < THRESHOLD_SCORE:
        frame, frame_score = _frame(a, b, settings)
    score = max(global_score, local_score, frame_score)
    warnings: list[str] = []
    for side, fp in (("source", a), ("target", b)):
        if is_low_information(fp, settings):
            warnings.append(f"low_information_{side}")
        if min(fp.width, fp.height) < settings.tiny_side_px:
            warnings.append(f"tiny_{side}")
    if _low_information(a, b, settings):
        score = min(score, LOW_INFORMATION_CAP * settings.match_threshold)
    confidence: Confidence
    if warnings:
        confidence = "low"
    elif score >= settings.high_score or score <= settings.low_score:
        confidence = "high"
    else:
        confidence = "medium"
    details: dict[str, Any] = {
        "method": (
            "thumbnail_frame"
            if frame_score > max(global_score, local_score)
            else "orb_similarity"
            if local_score > global_score
            else "dct256_dihedral" if inset is None else "dct256_inset"
        ),
        "frame_block_agreement": (
            None if frame is None else {"agreeing_fraction": round(frame.fraction, 3), "blocks": frame.blocks}
        ),
        "hamming_bits": bits,
        "transform": transform,
        "explanation": _explain(a, b, bits, transform, local, local_score > global_score, agreement, inset),
        "source": _side_details(a),
        "target": _side_details(b),
    }
    return Match(similarity_score=score, confidence=confidence, warnings=tuple(warnings), details=details)


def _frame(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings) -> tuple[Agreement | None, float]:
    """The whole-frame check (module docstring): its agreement and score."""
    frame = frame_agreement(
        a.thumb,
        (a.features.width, a.features.height),
        b.thumb,
        (b.features.width, b.features.height),
        settings.block_agreement_ncc,
        settings.frame_max_aspect_change,
        settings.frame_drop_fraction,
    )
    if a.trim != (0, 0, a.width, a.height) or b.trim != (0, 0, b.width, b.height):
        untrimmed = _untrimmed_frame_agreement(a, b, settings)
        if untrimmed is not None and (frame is None or untrimmed.fraction > frame.fraction):
            frame = untrimmed
    return frame, score_from_frame(frame, settings)


def _fit_agreement(a: ImageFingerprint, b: ImageFingerprint, local: LocalEvidence, settings: ImageSettings) -> Agreement:
    """Block agreement under the fit; on the fine grid when the overlap covers too few coarse blocks."""
    size_a, size_b = (a.features.width, a.features.height), (b.features.width, b.features.height)
    coarse = block_agreement(a.thumb, size_a, b.thumb, size_b, local.matrix, local.mirror, settings.block_agreement_ncc)
    if coarse.blocks >= settings.confirm_min_blocks:
        return coarse
    fine = block_agreement(
        a.thumb, size_a, b.thumb, size_b, local.matrix, local.mirror, settings.block_agreement_ncc, FINE_BLOCK_PX
    )
    return fine if fine.blocks > coarse.blocks else coarse


def _untrimmed_frame_agreement(a: ImageFingerprint, b: ImageFingerprint, settings: ImageSettings) -> Agreement | None:
    """The whole-frame check with the original frames aligned (``photometric.untrimmed_frame_matrix``)."""
    size_a, size_b = (a.features.width, a.features.height), (b.features.width, b.features.height)
    best: Agreement | None = None
    for mirror in (False, True):
        matrix = untrimmed_frame_matrix(
            a.trim, (a.width, a.height), size_a, b.trim, (b.width, b.height), size_b, mirror,
            settings.frame_max_aspect_change,
        )
        if matrix is None:
            return None
        found = block_agreement(
            a.thumb, size_a, b.thumb, size_b, matrix, mirror, settings.block_agreement_ncc,
            drop_fraction=settings.frame_drop_fraction,
        )
        if best is None or (found.fraction, found.blocks) > (best.fraction, best.blocks):
            best = found
    return best


def _explain(
    a: ImageFingerprint,
    b: ImageFingerprint,
    bits: int,
    transform: str,
    local: LocalEvidence | None,
    use_local: bool,
    agreement: Agreement | None,
    inset: InsetAlignment | None,
) -> dict[str, Any]:
    """What a reviewer needs: mirror, rotation, the crop box in source pixels, and the evidence."""
    checked = (
        None
        if agreement is None
        else {"agreeing_fraction": round(agreement.fraction, 3), "blocks": agreement.blocks, "block_px": agreement.block_px}
    )
    if inset is not None and not use_local:
        return {
            "stage": "inset_hash",
            "dihedral": inset.transform,
            "mirror": inset.transform in _MIRRORS,
            # The source is shown inside the target at this box (target pixels), or the reverse.
            "inset_holder": inset.holder,
            "inset_box": list(inset.box),
            "hamming_bits": inset.bits,
            "whole_image_hamming_bits": bits,
            "inliers": local.inliers if local is not None else None,
            "block_agreement": checked,
        }
    if local is None or not use_local:
        mirrored = transform in _MIRRORS
        return {
            "stage": "global_hash",
            "dihedral": transform,
            "mirror": mirrored,
            "crop_box_source": list(a.trim),
            "hamming_bits": bits,
            "inliers": local.inliers if local is not None else None,
            # A fit from the repeated-pattern pass (both nearest candidates kept); it needs the block check.
            "ambiguous": local.ambiguous if local is not None else None,
            # A local fit that the block check refused (same scene, not the same picture) shows up here.
            "block_agreement": checked,
        }
    left, top, _, _ = a.trim
    fw, fh = max(a.features.width, 1), max(a.features.height, 1)
    sx, sy = (a.trim[2] - left) / fw, (a.trim[3] - top) / fh
    target_px_per_working = (b.trim[2] - b.trim[0]) / max(b.features.width, 1)
    box = local.overlap_source
    crop = [round(left + box[0] * sx), round(top + box[1] * sy), round(left + box[2] * sx), round(top + box[3] * sy)]
    return {
        "stage": "local_features",
        "mirror": local.mirror,
        # The target is the source (mirrored first when "mirror"), rotated clockwise by this angle.
        "rotation_deg": round(local.rotation_deg, 1),
        # Target pixels per source pixel, both in original resolution.
        "scale": round(local.scale * target_px_per_working / max(sx, 1e-9), 4),
        "crop_box_source": crop,
        "inliers": local.inliers,
        "ambiguous": local.ambiguous,
        "inlier_ratio": round(local.inlier_ratio, 3),
        "containment": round(local.containment, 3),
        "block_agreement": checked,
        "hamming_bits": bits,
    }


def _side_details(fp: ImageFingerprint) -> dict[str, Any]:
    return {
        "width": fp.width,
        "height": fp.height,
        "trim_box": list(fp.trim),
        "quality": fp.quality,
        "detail": fp.detail,
        "keypoints": len(fp.features.points),
    }
