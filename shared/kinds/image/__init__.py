"""The image media kind: Pillow decode, a dihedral DCT hash plus ORB keypoints, a calibrated two-stage compare.

Role: the ``MediaKind`` implementation registered as ``"image"``; it wires ``decode`` (Pillow boundary),
``hashing`` (global hash), ``features`` (local keypoints), ``fingerprint`` (the value type), ``verify``
(geometry) and ``scoring`` (the compare). Imports nothing from Flask or Celery.

Design, and why (issue 3; measured in ``bench/image/REPORT.md``):

* **Global stage**: a PDQ-style 256-bit DCT hash of the border-trimmed image under all 8 rotations and
  mirrors. It is nearly free to compare, exact under re-encoding, resizing, colour edits, mirrors and
  quarter turns, and it is what a catalog indexes (32 bytes, Hamming search). Its blind spots are known
  (FIELD_NOTES: PDQ loses crops over 5%, padding that is not uniform, rotations over a few degrees).
* **Insets** (``inset.py``): a picture placed inside a page (a screenshot, a web page, a phone capture) is
  found by its four straight edges and hashed on its own; the global stage compares each side's insets
  with the other side as a whole. A copy shown small inside a canvas keeps few keypoints, and repeated
  patterns defeat them, but the pasted picture hashes within a few bits of its source. A picture turned a
  few degrees inside its frame (black corners) is also hashed turned back (``turn.py``).
* **Local stage**: 256 ORB keypoints of the trimmed image (16-byte descriptors, closed under mirroring:
  half the bits are taken on the mirrored image, so mirrors survive crops at no extra bytes), then a RANSAC
  *similarity* with sanity checks (scale,
  containment, inlier spread, inlier ratio). It covers crops, canvases, logos, small and quarter rotations
  and their combinations. Learned copy-detection descriptors (SSCD) would be stronger but need weights we
  cannot download; SIFT is about 10x slower and its descriptors too large for a few-KB fingerprint.
* **Photometric check** (``photometric.py``): when the local fit would decide, a 64 px luma thumbnail of
  each side is aligned through the fit and compared block by block (NCC per 8 px block). Geometry alone
  cannot tell the same *picture* from the same *place*: stereo pairs, neighbouring video frames and second
  shots of one scene verify with 13-43 inliers, as many as a crop, but parallax and motion break many
  blocks, while logos, watermarks and canvas chrome break only the few they cover. A fit the blocks refute
  is dropped; a fit they clearly confirm needs fewer inliers (copies shown small keep few keypoints).
  Two rescues lean on it: a repeated-pattern pass (both nearest candidates, for chessboards and textures)
  whose fits count only when the blocks confirm them (its hypotheses must agree with how far the matched
  keypoints turned), and a whole-frame comparison of the thumbnails when the frame is kept (text watermarks
  on smooth pictures, where neither the hash nor the keypoints hold; each block ignores its worst-fitting
  quarter of pixels, the strokes). Copies shown small are judged on 4 px blocks.
* **Score**: the larger of the stage scores, each calibrated on the tuning split so that 0.80 sits at
  its 1e-4 false-positive operating point; the local stage is skipped when the hashes are already close.

The fingerprint (format v5) is about 7.6 KB: 307 bytes of header and hashes, the 64 px thumbnail as a ~2 KB
lossless WebP, 20 bytes per keypoint, 50 per inset (v4 was 13 KB; the trade-off is measured in
``bench/image/REPORT.md``, v6 and v8). Animated
GIF/WebP/APNG and multi-page TIFF are fingerprinted from their **first frame** only.
"""

from __future__ import annotations

from shared.errors import InvalidRequest
from shared.kinds.image.decode import decode_luma
from shared.kinds.image.features import describe_plane, working_plane
from shared.kinds.image.fingerprint import MAX_STORED_INSETS, ImageFingerprint, Inset
from shared.kinds.image.hashing import hash_luma
from shared.kinds.image.inset import find_insets
from shared.kinds.image.photometric import encode_thumbnail, thumbnail
from shared.kinds.image.scoring import compare_fingerprints, compare_or_bound
from shared.kinds.image.turn import turn_deg, turned_back
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
    left, top, right, bottom = result.trim
    content = decoded.luma[top:bottom, left:right]
    working = working_plane(content)
    features = describe_plane(working)
    thumb = thumbnail(working)
    # Boxes are found on the working-resolution plane; they are reported in original pixels.
    plane_h, plane_w = decoded.luma.shape
    sx, sy = decoded.width / plane_w, decoded.height / plane_h

    def original(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        return round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)

    insets: list[Inset] = []
    for x0, y0, x1, y1 in find_insets(content):
        if len(insets) >= MAX_STORED_INSETS:
            break
        region = content[y0:y1, x0:x1]
        inner = hash_luma(region)  # trimmed again: a picture may bring its own margin
        il, it, ir, ib = inner.trim
        box = (left + x0 + il, top + y0 + it, left + x0 + ir, top + y0 + ib)
        insets.append(Inset(original(box), inner.quality, min(inner.detail, 255), inner.hashes[0]))
        turned = turn_deg(region) if len(insets) < MAX_STORED_INSETS else None
        if turned is not None:  # a picture turned inside its frame: also hashed turned back (``turn.py``)
            back = hash_luma(turned_back(region, turned))
            frame = (left + x0, top + y0, left + x1, top + y1)
            insets.append(Inset(original(frame), back.quality, min(back.detail, 255), back.hashes[0]))
    fp = ImageFingerprint(
        width=decoded.width,
        height=decoded.height,
        trim=original(result.trim),
        quality=result.quality,
        detail=min(result.detail, 255),
        hashes=result.hashes,
        features=features,
        thumb_pixels=thumb,
        thumb_code=encode_thumbnail(thumb),
        insets=tuple(insets),
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

    def compare_or_bound(self, a: Fingerprint, b: Fingerprint, settings: Settings, floor: float) -> Match | float:
        """``compare(a, b)``, or an upper bound of its score when that is below ``floor`` (found cheaply)."""
        if not isinstance(a, ImageFingerprint) or not isinstance(b, ImageFingerprint):
            raise InvalidRequest("the image kind can only compare image fingerprints")
        return compare_or_bound(a, b, settings.image, floor)

    def fingerprint_from_bytes(self, data: bytes) -> ImageFingerprint:
        return ImageFingerprint.from_bytes(data)


KIND = ImageKind()
