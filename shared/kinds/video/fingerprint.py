"""``VideoFingerprint``: frame hashes on a regular time grid, with a compact versioned binary form.

Samples sit on the grid ``t_k = k / sample_fps`` of content time (seconds since the first frame), so their
times are implied by ``start_index`` and the sample count and cost no bytes. A sample carries the 28-byte
frame hash; a frame without information (black, blank) is stored as the all-zero hash, which a real frame
never produces (``frames.frame_hash`` keeps them apart), so the flag costs no bytes either.

The hashes are XORed with the previous row (consecutive samples of one shot share most bits) and deflated;
when that does not help the raw rows are kept. A raw row is 28 bytes, so at 2 samples/s the rows never cost
more than 56 bytes per second of video, and the 51-byte header keeps the whole form under 64 B/s for any
video longer than about 6.4 s.

Layout after ``pack_header`` (version 3): ``<f duration_s, f fps, f sample_fps, I start_index, I n_samples,
H width, H height, 4H crop (top, bottom, left, right; source pixels), B encoding (0 raw, 1 xor+zlib),
I audio_bytes``, then the rows, then the optional audio attachment (the audio kind's own versioned bytes, about
500 B/s; the 64 B/s budget is for the visual part, which is all a catalog needs to index).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from shared.errors import DecodeFailed
from shared.kinds.video.frames import HASH_BYTES
from shared.protocol import pack_header, unpack_header

_FIELDS = struct.Struct("<fffIIHHHHHHBI")
_RAW, _XOR_ZLIB = 0, 1


@dataclass(frozen=True, eq=False)
class VideoFingerprint:
    kind: ClassVar[str] = "video"
    version: ClassVar[int] = 3

    #: (N, 28) uint8; all-zero rows are samples without information.
    hashes: np.ndarray
    duration_s: float
    #: Average frame rate of the stream (informative only).
    fps: float
    sample_fps: float
    #: Grid index of the first sample; usually 0.
    start_index: int = 0
    #: (width, height) of the decoded frames, and the black bars cropped before hashing, in their pixels.
    frame_size: tuple[int, int] = (0, 0)
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: The audio kind's fingerprint of the soundtrack (``AudioFingerprint.to_bytes``), or empty when the file
    #: has no audio track or ``VideoSettings.audio_similarity`` is off. Only ``details.audio_similarity``
    #: reads it; the visual match never does.
    audio: bytes = b""
    informative: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        hashes = np.ascontiguousarray(self.hashes, dtype=np.uint8).reshape(-1, HASH_BYTES)
        object.__setattr__(self, "hashes", hashes)
        object.__setattr__(self, "informative", hashes.any(axis=1))
        for name in ("duration_s", "fps", "sample_fps"):  # stored as float32: round now so bytes round-trip
            object.__setattr__(self, name, float(np.float32(getattr(self, name))))

    @property
    def timestamps_s(self) -> np.ndarray:
        return (self.start_index + np.arange(self.hashes.shape[0], dtype=np.float64)) / self.sample_fps

    @property
    def step_s(self) -> float:
        return 1.0 / self.sample_fps

    def to_bytes(self) -> bytes:
        raw = self.hashes.tobytes()
        delta = self.hashes.copy()
        delta[1:] ^= self.hashes[:-1]
        packed = zlib.compress(delta.tobytes(), 9)
        encoding, body = (_XOR_ZLIB, packed) if len(packed) < len(raw) else (_RAW, raw)
        width, height = self.frame_size
        fields = _FIELDS.pack(
            self.duration_s,
            self.fps,
            self.sample_fps,
            self.start_index,
            self.hashes.shape[0],
            width,
            height,
            *self.crop,
            encoding,
            len(self.audio),
        )
        return pack_header(self.kind, self.version) + fields + body + self.audio

    @classmethod
    def from_bytes(cls, data: bytes) -> VideoFingerprint:
        payload = unpack_header(bytes(data), cls.kind, cls.version)
        if len(payload) < _FIELDS.size:
            raise DecodeFailed("video fingerprint bytes are truncated")
        duration_s, fps, sample_fps, start, n, width, height, top, bottom, left, right, encoding, n_audio = (
            _FIELDS.unpack_from(payload)
        )
        body = bytes(payload[_FIELDS.size :])
        if n_audio > len(body):
            raise DecodeFailed("video fingerprint bytes are truncated")
        body, audio = body[: len(body) - n_audio], body[len(body) - n_audio :]
        if encoding == _XOR_ZLIB:
            try:
                body = zlib.decompress(body)
            except zlib.error as exc:
                raise DecodeFailed("video fingerprint bytes are corrupt") from exc
        elif encoding != _RAW:
            raise DecodeFailed(f"unknown video fingerprint encoding {encoding}")
        if len(body) != n * HASH_BYTES or not sample_fps > 0:
            raise DecodeFailed("video fingerprint bytes are corrupt")
        rows = np.frombuffer(body, np.uint8).reshape(n, HASH_BYTES).copy()
        if encoding == _XOR_ZLIB:
            rows = np.bitwise_xor.accumulate(rows, axis=0)
        return cls(
            hashes=rows,
            duration_s=float(duration_s),
            fps=float(fps),
            sample_fps=float(sample_fps),
            start_index=int(start),
            frame_size=(int(width), int(height)),
            crop=(int(top), int(bottom), int(left), int(right)),
            audio=audio,
        )
