"""``ImageFingerprint``: the typed, versioned value computed from one image.

Role: the value type and its binary form; no decoding, no scoring. Imports nothing from Flask or Celery.

Binary layout, version 5 (little-endian; 307 bytes + the thumbnail's WebP + 20 per keypoint + 50 per inset:
at most 5,627 bytes plus the thumbnail with 256 points and 4 insets, about 7.6 KB on the benchmark's photos):

    header       14 bytes  shared.protocol.pack_header("image", 5)
    width         u32      upright (after EXIF orientation) size of the original, pixels
    height        u32
    trim         4 x u32   content box left, top, right, bottom (exclusive), original pixels
    quality       u8       PDQ-style gradient quality, 0..100
    detail        u8       significant AC coefficients, 0..255
    feature_w     u16      size of the working plane the keypoints live on (the trim box, resized)
    feature_h     u16
    keypoints     u16      number of keypoints n
    thumb_w       u8       size of the luma thumbnail (``photometric.thumbnail``, long side 64)
    thumb_h       u8
    thumb_bytes   u16      length m of the thumbnail's stored form
    hashes      8 x 32 B   256-bit hash of each dihedral transform, in ``hashing.DIHEDRALS`` order
    thumbnail     m B      the working plane at 64 px, lossless WebP (``photometric.encode_thumbnail``)
    points      n x 20 B   ``features.pack_points``: x, y (1/4 px), angle, octave; the mirror-closed descriptor
    insets        u8       number of insets k (``inset.py``: pictures placed inside this one), then k x 50 B:
                           box 4 x u32 (original pixels), quality u8, detail u8, the inset's 256-bit hash;
                           a picture turned inside its frame (``turn.py``) is followed by its frame's hash
                           turned back, with the frame's box (at most 4 entries in all)

Version 4 (13 KB: 256 points of 38 bytes with separate mirror descriptors, a raw thumbnail) and older
versions are refused with ``DecodeFailed``; stored fingerprints of older versions must be recomputed
(bench/image/REPORT.md, pass v8).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from shared.errors import DecodeFailed
from shared.kinds.image.features import (
    KEYPOINT_DTYPE,
    MAX_KEYPOINTS,
    STORED_POINT_BYTES,
    Features,
    pack_points,
    unpack_points,
)
from shared.kinds.image.hashing import DIHEDRALS, HASH_BYTES
from shared.kinds.image.photometric import THUMB_SIDE_PX, decode_thumbnail, encode_thumbnail
from shared.protocol import pack_header, unpack_header

_BODY = struct.Struct("<II4IBBHHHBBH")
_HASHES_BYTES = len(DIHEDRALS) * HASH_BYTES
_INSET = struct.Struct(f"<4IBB{HASH_BYTES}s")
#: At most this many inset entries are stored: ``inset.MAX_INSETS`` pictures as they are, and the turned-back
#: hashes of those turned inside their frames (``turn.py``). Three, until a turn read on one inset crowded
#: out another inset's turned-back hash (``bench/image/REPORT.md``); entries beyond 3 were refused before, so
#: a reader of this version parses every older v5 fingerprint.
MAX_STORED_INSETS = 4


@dataclass(frozen=True)
class Inset:
    """A picture found inside the image (``inset.py``), hashed on its own so a copy of it matches globally."""

    #: left, top, right, bottom (exclusive) in original pixels, after the inset's own border trim.
    box: tuple[int, int, int, int]
    quality: int
    detail: int
    #: The inset's 256-bit hash as it appears (the other side's 8 dihedral hashes cover its rotations).
    hash: bytes


@dataclass(frozen=True, eq=False)
class ImageFingerprint:
    kind: ClassVar[str] = "image"
    version: ClassVar[int] = 5

    width: int
    height: int
    #: Content box inside uniform borders: (left, top, right, bottom), right/bottom exclusive.
    trim: tuple[int, int, int, int]
    quality: int
    detail: int
    #: One 32-byte hash per dihedral transform of the image, ``hashes[0]`` being the image as is.
    hashes: tuple[bytes, ...]
    #: ORB keypoints of the trimmed content (see ``features.py``).
    features: Features = field(default_factory=lambda: Features(0, 0, np.zeros(0, KEYPOINT_DTYPE)))
    #: The thumbnail's pixels when known: the working plane at a long side of 64 px, uint8 (see
    #: ``photometric.py``). ``None`` in a parsed fingerprint: ``thumb`` decodes ``thumb_code`` on first
    #: use, since a catalog search compares most candidates by their hashes alone and the decode is three
    #: quarters of a parse.
    thumb_pixels: np.ndarray | None = None
    #: Pictures placed inside this image (a screenshot's photo), largest first; usually none.
    insets: tuple[Inset, ...] = ()
    #: The stored (lossless WebP) form of the thumbnail, kept so storing does not encode again; empty:
    #: encoded from ``thumb_pixels`` by ``to_bytes``.
    thumb_code: bytes = b""
    #: (width, height) of the thumbnail ``thumb_code`` holds, when ``thumb_pixels`` is ``None``.
    thumb_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if len(self.hashes) != len(DIHEDRALS) or any(len(h) != HASH_BYTES for h in self.hashes):
            raise ValueError("an image fingerprint holds 8 hashes of 32 bytes")
        if self.features.points.dtype != KEYPOINT_DTYPE or len(self.features.points) > MAX_KEYPOINTS:
            raise ValueError(f"an image fingerprint holds at most {MAX_KEYPOINTS} keypoints")
        pixels = self.thumb_pixels
        if (pixels is not None and (pixels.dtype != np.uint8 or pixels.ndim != 2)) or max(self._thumb_shape) > THUMB_SIDE_PX:
            raise ValueError(f"an image fingerprint's thumbnail is uint8, at most {THUMB_SIDE_PX} px a side")
        if len(self.insets) > MAX_STORED_INSETS or any(len(i.hash) != HASH_BYTES for i in self.insets):
            raise ValueError(f"an image fingerprint holds at most {MAX_STORED_INSETS} insets of one 32-byte hash")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageFingerprint) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    @functools.cached_property
    def thumb(self) -> np.ndarray:
        """The thumbnail's pixels (empty when unknown), decoded from ``thumb_code`` on first use when parsed;
        ``DecodeFailed`` when the stored form does not decode to its stated size."""
        if self.thumb_pixels is not None:
            return self.thumb_pixels
        width, height = self.thumb_size
        thumb = decode_thumbnail(self.thumb_code, width, height)
        if thumb is None:
            raise DecodeFailed("image fingerprint thumbnail does not decode")
        return thumb

    @property
    def _thumb_shape(self) -> tuple[int, int]:
        """(height, width) of the thumbnail, without decoding it."""
        if self.thumb_pixels is not None:
            return self.thumb_pixels.shape[0], self.thumb_pixels.shape[1]
        return self.thumb_size[1], self.thumb_size[0]

    @property
    def duration_s(self) -> float | None:
        return None

    @property
    def hash_hex(self) -> str:
        """The hash of the image as decoded, in hex (64 characters), for logs and reviewers."""
        return self.hashes[0].hex()

    def to_bytes(self) -> bytes:
        f = self.features
        th, tw = self._thumb_shape
        thumb = self.thumb_code or encode_thumbnail(self.thumb)
        if len(thumb) > 0xFFFF:
            raise ValueError("an image fingerprint's thumbnail is too large to store")
        body = _BODY.pack(
            self.width,
            self.height,
            *self.trim,
            self.quality,
            self.detail,
            f.width,
            f.height,
            len(f.points),
            tw,
            th,
            len(thumb),
        )
        return (
            pack_header(self.kind, self.version)
            + body
            + b"".join(self.hashes)
            + thumb
            + pack_points(f.points)
            + bytes([len(self.insets)])
            + b"".join(_INSET.pack(*i.box, i.quality, i.detail, i.hash) for i in self.insets)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageFingerprint:
        payload = unpack_header(bytes(data), cls.kind, cls.version)
        fixed = _BODY.size + _HASHES_BYTES
        if len(payload) < fixed:
            raise DecodeFailed(f"image fingerprint payload has {len(payload)} bytes, too few for v5")
        width, height, left, top, right, bottom, quality, detail, fw, fh, n, tw, th, m = _BODY.unpack_from(
            payload
        )
        thumb_end = fixed + m
        points_end = thumb_end + n * STORED_POINT_BYTES
        k = payload[points_end] if len(payload) > points_end else -1
        if (
            n > MAX_KEYPOINTS
            or max(tw, th) > THUMB_SIDE_PX
            or not 0 <= k <= MAX_STORED_INSETS
            or len(payload) != points_end + 1 + k * _INSET.size
        ):
            raise DecodeFailed(f"image fingerprint payload has {len(payload)} bytes, not the v5 size")
        raw = bytes(payload[_BODY.size : _BODY.size + _HASHES_BYTES])
        hashes = tuple(raw[i * HASH_BYTES : (i + 1) * HASH_BYTES] for i in range(len(DIHEDRALS)))
        code = bytes(payload[fixed:thumb_end])
        if (m == 0) != (tw == 0 or th == 0):
            raise DecodeFailed("image fingerprint thumbnail does not match its stated size")
        points = unpack_points(bytes(payload[thumb_end:points_end]))
        features = Features(fw, fh, points)
        insets = []
        for j in range(k):
            *box, inset_quality, inset_detail, inset_hash = _INSET.unpack_from(payload, points_end + 1 + j * _INSET.size)
            insets.append(Inset((box[0], box[1], box[2], box[3]), inset_quality, inset_detail, inset_hash))
        return cls(
            width, height, (left, top, right, bottom), quality, detail, hashes, features, None, tuple(insets), code,
            (tw, th),
        )
