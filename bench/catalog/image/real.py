"""Real fingerprints for the catalog benchmark: the image benchmark's originals and both seeds' variants.

Fingerprints are computed with the image kind (``shared.kinds.image.fingerprint_image``, decode included)
and cached in ``bench/data/catalog_image/`` ({relative path: fingerprint bytes}), keyed by the fingerprint
version and a digest of the image kind's source (a change of what a fingerprint holds keeps its version),
so the benchmark's timed part never decodes an image.

    .venv/bin/python -m bench.catalog.image.real
"""

from __future__ import annotations

import hashlib
import os
import pickle
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import shared.kinds.image as image_kind  # noqa: E402
from bench.image import dataset  # noqa: E402
from shared.kinds.image import KIND, ImageFingerprint, fingerprint_image  # noqa: E402
from shared.media import describe, hash_file  # noqa: E402
from shared.protocol import LocalMedia  # noqa: E402
from shared.settings import Settings  # noqa: E402

OUT = dataset.DATA.parent / "catalog_image"
_SOURCE = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(image_kind.__file__).parent.glob("*.py"))))
CACHE = OUT / f"real_v{ImageFingerprint.version}_{_SOURCE.hexdigest()[:12]}.pkl"


def media(rel: str, settings: Settings) -> LocalMedia:
    """The benchmark file ``rel`` (under ``dataset.DATA``) as the service describes an input."""
    path = dataset.DATA / rel
    return describe(path, hash_file(path, settings.fetch.max_bytes_for("image")), KIND)


def _one(rel: str) -> tuple[str, bytes]:
    import cv2

    cv2.setNumThreads(1)
    settings = Settings()
    return rel, fingerprint_image(media(rel, settings), settings).to_bytes()


def paths() -> list[str]:
    rels: set[str] = set()
    for seed in (0, 1):
        for p in dataset.build(seed):
            rels.update((p.source, p.target))
    return sorted(rels)


def load() -> dict[str, bytes]:
    """{relative path: fingerprint bytes} of every original and variant of seeds 0 and 1 (cached)."""
    if CACHE.exists():
        cached: dict[str, bytes] = pickle.loads(CACHE.read_bytes())
        return cached
    OUT.mkdir(parents=True, exist_ok=True)
    with Pool(2) as pool:
        out = dict(pool.imap_unordered(_one, paths(), chunksize=16))
    CACHE.write_bytes(pickle.dumps(out))
    return out


if __name__ == "__main__":
    print(f"{len(load())} fingerprints in {CACHE}")
