"""The four methods the image benchmark runs on the same pairs: this project and three peers.

Role: one small adapter per method with the same shape: ``fingerprint(path) -> bytes`` (decode included),
``compare(a, b) -> score`` (higher means more alike), ``matches(score)`` at the method's own default
threshold, and ``size(fp)`` in bytes. Fingerprints travel as bytes so worker processes can compute them.

* ``mediamatch``: ``shared.kinds.image`` as the service runs it (default ``ImageSettings``).
* ``pdq``: ``pdqhash.compute_dihedral`` on the full RGB image (8 hashes); distance = the minimum Hamming
  distance over the 8, both ways; match at <= 31 bits (PDQ's recommended threshold). No quality gate.
* ``phash``: ``imagehash.phash`` (64 bits, 8x8 of a 32x32 DCT); match at <= 10 bits, the threshold commonly
  used with imagehash (its README compares hashes by distance and leaves the cut to the user).
* ``orb_ransac``: OpenCV ORB, 1000 features on the image resized to a long side of at most 1024 px, Lowe
  ratio 0.75, ``cv2.findHomography`` RANSAC (5 px); score = inlier count; match at >= 15 inliers. Like the
  usual tutorials, it does not try the mirrored image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
import pdqhash
from PIL import Image

from shared.kinds.image import KIND, ImageFingerprint
from shared.protocol import LocalMedia
from shared.settings import Settings
from shared.sniff import SNIFF_BYTES, sniff

SETTINGS = Settings()


@dataclass(frozen=True)
class Method:
    name: str
    fingerprint: Callable[[Path], bytes]
    compare: Callable[[bytes, bytes], float]
    matches: Callable[[float], bool]
    threshold_text: str


# -- this project ---------------------------------------------------------------------------------------
def _mm_fingerprint(path: Path) -> bytes:
    data = path.read_bytes()
    media = LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), sniff(data[:SNIFF_BYTES]) or "")
    return KIND.fingerprint(media, SETTINGS).to_bytes()


_MM_CACHE: dict[bytes, ImageFingerprint] = {}


def _mm_parse(data: bytes) -> ImageFingerprint:
    fp = _MM_CACHE.get(data)
    if fp is None:
        fp = ImageFingerprint.from_bytes(data)
        if len(_MM_CACHE) > 20_000:
            _MM_CACHE.clear()
        _MM_CACHE[data] = fp
    return fp


def _mm_compare(a: bytes, b: bytes) -> float:
    return KIND.compare(_mm_parse(a), _mm_parse(b), SETTINGS).similarity_score


# -- PDQ ------------------------------------------------------------------------------------------------
def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _pdq_fingerprint(path: Path) -> bytes:
    hashes, _quality = pdqhash.compute_dihedral(_rgb(path))
    return b"".join(np.packbits(np.asarray(h, dtype=np.uint8)).tobytes() for h in hashes)


def _bits(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def _pdq_compare(a: bytes, b: bytes) -> float:
    ha = [a[i * 32 : (i + 1) * 32] for i in range(8)]
    hb = [b[i * 32 : (i + 1) * 32] for i in range(8)]
    best = min(min(_bits(ha[0], h), _bits(h2, hb[0])) for h, h2 in zip(hb, ha, strict=True))
    return float(256 - best)


# -- pHash ----------------------------------------------------------------------------------------------
def _phash_fingerprint(path: Path) -> bytes:
    with Image.open(path) as img:
        h = imagehash.phash(img.convert("RGB"))
    return np.packbits(h.hash.ravel()).tobytes()


def _phash_compare(a: bytes, b: bytes) -> float:
    return float(64 - _bits(a, b))


# -- ORB + RANSAC ---------------------------------------------------------------------------------------
_ORB_FEATURES = 1000
_ORB_SIDE_PX = 1024


def _orb_fingerprint(path: Path) -> bytes:
    with Image.open(path) as img:
        gray = np.asarray(img.convert("L"))
    scale = _ORB_SIDE_PX / max(gray.shape)
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    kps, desc = cv2.ORB_create(nfeatures=_ORB_FEATURES).detectAndCompute(gray, None)
    if desc is None:
        return b""
    xy = np.array([k.pt for k in kps], np.float32)
    return xy.tobytes() + desc.tobytes()


def _orb_parse(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    n = len(data) // 40
    xy = np.frombuffer(data[: n * 8], np.float32).reshape(n, 2)
    desc = np.frombuffer(data[n * 8 :], np.uint8).reshape(n, 32)
    return xy, desc


def _orb_compare(a: bytes, b: bytes) -> float:
    if len(a) < 80 or len(b) < 80:
        return 0.0
    (xa, da), (xb, db) = _orb_parse(a), _orb_parse(b)
    good = [p[0] for p in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
            if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    if len(good) < 4:
        return 0.0
    src = xa[[m.queryIdx for m in good]]
    dst = xb[[m.trainIdx for m in good]]
    _h, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    return 0.0 if mask is None else float(mask.sum())


METHODS: dict[str, Method] = {
    "mediamatch": Method("mediamatch", _mm_fingerprint, _mm_compare,
                         lambda s: s >= SETTINGS.image.match_threshold,
                         f"score >= {SETTINGS.image.match_threshold}"),
    "pdq": Method("pdq", _pdq_fingerprint, _pdq_compare, lambda s: 256 - s <= 31, "<= 31 of 256 bits"),
    "phash": Method("phash", _phash_fingerprint, _phash_compare, lambda s: 64 - s <= 10, "<= 10 of 64 bits"),
    "orb_ransac": Method("orb_ransac", _orb_fingerprint, _orb_compare, lambda s: s >= 15, ">= 15 inliers"),
}
