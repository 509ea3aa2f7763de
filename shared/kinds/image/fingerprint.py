"""``ImageFingerprint``: the typed, versioned value computed from one image.

Role: the value type and its binary form; no decoding, no scoring. Imports nothing from Flask or Celery.

Binary layout, version 1 (little-endian, 298 bytes in all):

    header       14 bytes  shared.protocol.pack_header("image", 1)
    width         u32      upright (after EXIF orientation) size of the original, pixels
    height        u32
    trim         4 x u32   content box left, top, right, bottom (exclusive), original pixels
    quality       u8       PDQ-style gradient quality, 0..100
    detail        u8       significant AC coefficients, 0..255
    reserved      u16      0
    hashes      8 x 32 B   256-bit hash of each dihedral transform, in ``hashing.DIHEDRALS`` order
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from shared.errors import DecodeFailed
from shared.kinds.image.hashing import DIHEDRALS, HASH_BYTES
from shared.protocol import pack_header, unpack_header

_BODY = struct.Struct("<II4IBBH")


@dataclass(frozen=True)
class ImageFingerprint:
    kind: ClassVar[str] = "image"
    version: ClassVar[int] = 1

    width: int
    height: int
    #: Content box inside uniform borders: (left, top, right, bottom), right/bottom exclusive.
    trim: tuple[int, int, int, int]
    quality: int
    detail: int
    #: One 32-byte hash per dihedral transform of the image, ``hashes[0]`` being the image as is.
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.hashes) != len(DIHEDRALS) or any(len(h) != HASH_BYTES for h in self.hashes):
            raise ValueError("an image fingerprint holds 8 hashes of 32 bytes")

    @property
    def duration_s(self) -> float | None:
        return None

    @property
    def hash_hex(self) -> str:
        """The hash of the image as decoded, in hex (64 characters), for logs and reviewers."""
        return self.hashes[0].hex()

    def to_bytes(self) -> bytes:
        body = _BODY.pack(self.width, self.height, *self.trim, self.quality, self.detail, 0)
        return pack_header(self.kind, self.version) + body + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageFingerprint:
        payload = unpack_header(bytes(data), cls.kind, cls.version)
        if len(payload) != _BODY.size + len(DIHEDRALS) * HASH_BYTES:
            raise DecodeFailed(f"image fingerprint payload has {len(payload)} bytes, not the v1 size")
        width, height, left, top, right, bottom, quality, detail, _ = _BODY.unpack_from(payload)
        raw = bytes(payload[_BODY.size :])
        hashes = tuple(raw[i * HASH_BYTES : (i + 1) * HASH_BYTES] for i in range(len(DIHEDRALS)))
        return cls(width, height, (left, top, right, bottom), quality, detail, hashes)
