"""The image media kind: decode with Pillow, a 256-bit dihedral DCT hash, a calibrated compare.

Role: the ``MediaKind`` implementation registered as ``"image"``; it wires ``decode`` (Pillow boundary),
``hashing`` (the algorithm), ``fingerprint`` (the value type) and ``scoring`` (the compare). A stronger
matcher (e.g. local features for crops) can add a fingerprint version and a scoring stage without
touching the service. Imports nothing from Flask or Celery.

Animated GIF/WebP/APNG and multi-page TIFF are fingerprinted from their **first frame** only.
"""

from __future__ import annotations

from shared.errors import InvalidRequest
from shared.kinds.image.decode import decode_luma
from shared.kinds.image.fingerprint import ImageFingerprint
from shared.kinds.image.hashing import hash_luma
from shared.kinds.image.scoring import compare_fingerprints
from shared.protocol import Fingerprint, LocalMedia, Match, Progress, no_progress
from shared.settings import Settings
from shared.sniff import IMAGE_MIMES

__all__ = ["KIND", "ImageFingerprint", "ImageKind", "fingerprint_image"]


def fingerprint_image(
    media: LocalMedia, settings: Settings, progress: Progress = no_progress
) -> ImageFingerprint:
    """Decode ``media`` and compute its fingerprint; raises only ``shared.errors`` types."""
    progress(0.0)
    decoded = decode_luma(media, settings.image)
    progress(0.6)
    result = hash_luma(decoded.luma)
    # The trim box was found on the working-resolution plane; report it in original pixels.
    plane_h, plane_w = decoded.luma.shape
    sx, sy = decoded.width / plane_w, decoded.height / plane_h
    left, top, right, bottom = result.trim
    trim = (round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
    fp = ImageFingerprint(
        width=decoded.width,
        height=decoded.height,
        trim=trim,
        quality=result.quality,
        detail=min(result.detail, 255),
        hashes=result.hashes,
    )
    progress(1.0)
    return fp


class ImageKind:
    """``MediaKind`` for still images (and the first frame of animated ones)."""

    name = "image"

    def accepts(self, mime: str) -> bool:
        return mime in IMAGE_MIMES

    def probe_duration_s(self, media: LocalMedia, settings: Settings) -> float | None:
        return None

    def fingerprint(
        self, media: LocalMedia, settings: Settings, progress: Progress = no_progress
    ) -> Fingerprint:
        return fingerprint_image(media, settings, progress)

    def compare(self, a: Fingerprint, b: Fingerprint, settings: Settings) -> Match:
        if not isinstance(a, ImageFingerprint) or not isinstance(b, ImageFingerprint):
            raise InvalidRequest("the image kind can only compare image fingerprints")
        return compare_fingerprints(a, b, settings.image)

    def fingerprint_from_bytes(self, data: bytes) -> ImageFingerprint:
        return ImageFingerprint.from_bytes(data)


KIND = ImageKind()
