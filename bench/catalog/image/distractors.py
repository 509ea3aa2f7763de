"""Synthetic distractor fingerprints for the 10^6-item catalog, derived from real ones (disclosed in REPORT.md).

Each distractor ``i`` is a full ``ImageFingerprint`` made deterministically from ``(seed, i)`` out of a
pool of real fingerprints (the image benchmark's originals and seed-1 variants), so that its parts have
the statistics of real ones without being a copy of any real image:

* **hashes**: a uniform bitwise crossover of the 16x16 DCT sign blocks of two random real fingerprints A
  and B (the same crossover mask for all 8 dihedral variants, transposed where the variant transposes),
  then 5% of the bits flipped. The bits keep real hashes' correlations; a distractor is typically 60-80
  bits from A or B (real unrelated photos: ~128), so this is harder on the hash index than real data.
* **keypoints**: A's positions, angles and octaves, each with the (mirror-closed) descriptor of a random
  keypoint of a random pool fingerprint, 6% of the bits flipped (~8 of 128): real ORB descriptors, in a
  geometry that belongs to no real image.
* **insets**: A's boxes, qualities and details (so as many are informative as in real fingerprints), each
  hash a uniform bitwise crossover of A's inset hash and B's hash 0, then 5% of the bits flipped: the image
  index posts and probes them as it would real ones, and they match nothing.
* **thumbnail**: A's, flipped upside down and rolled by a random offset (so it lines up with nothing).
* size, trim box, quality and detail: A's.

Generating one costs about as much as parsing a stored fingerprint, so the benchmark regenerates the
candidates it verifies instead of keeping 13 GB of them (``Distractors.make``).
"""

from __future__ import annotations

import numpy as np

from shared.kinds.image.features import Features
from shared.kinds.image.fingerprint import ImageFingerprint, Inset
from shared.kinds.image.hashing import DIHEDRALS

HASH_FLIP = 0.05
DESC_FLIP = 0.06


class Distractors:
    def __init__(self, pool: list[ImageFingerprint], seed: int) -> None:
        self.pool, self.seed = pool, seed
        self._bits = np.stack(
            [np.unpackbits(np.frombuffer(b"".join(fp.hashes), np.uint8)).reshape(8, 16, 16) for fp in pool]
        ).astype(bool)
        points = [fp.features.points for fp in pool]
        self._desc = np.concatenate([p["desc"] for p in points])

    def make(self, i: int) -> ImageFingerprint:
        rng = np.random.default_rng([self.seed, i])
        a, b = (int(x) for x in rng.integers(0, len(self.pool), 2))
        base = self.pool[a]
        mask = rng.random((16, 16)) < 0.5
        hashes = []
        for k, d in enumerate(DIHEDRALS):
            m = mask.T if d.transpose else mask
            bits = np.where(m, self._bits[a, k], self._bits[b, k]) ^ (rng.random((16, 16)) < HASH_FLIP)
            hashes.append(np.packbits(bits).tobytes())
        pts = base.features.points.copy()
        n = len(pts)
        if n:
            rows = rng.integers(0, len(self._desc), n)
            flips = np.packbits(rng.random((n, 128)) < DESC_FLIP, axis=1)
            pts["desc"] = self._desc[rows] ^ flips
        insets = []
        for inset in base.insets:
            own = np.unpackbits(np.frombuffer(inset.hash, np.uint8))
            other = self._bits[b, 0].ravel()
            bits = np.where(rng.random(256) < 0.5, own, other) ^ (rng.random(256) < HASH_FLIP)
            insets.append(Inset(inset.box, inset.quality, inset.detail, np.packbits(bits).tobytes()))
        thumb = np.flipud(base.thumb)
        if thumb.size:
            thumb = np.roll(thumb, (int(rng.integers(0, thumb.shape[0])), int(rng.integers(0, thumb.shape[1]))), (0, 1))
        return ImageFingerprint(
            base.width, base.height, base.trim, base.quality, base.detail, tuple(hashes),
            Features(base.features.width, base.features.height, pts), np.ascontiguousarray(thumb), tuple(insets),
        )
