"""The registry of media kinds. Each module here exposes ``KIND``, an object implementing
``shared.protocol.MediaKind``. Modules are imported on first use, so the API process does not pay for
OpenCV or PyAV until it needs them.
"""

from __future__ import annotations

import importlib

from shared.errors import InvalidRequest
from shared.protocol import MediaKind

KIND_NAMES: tuple[str, ...] = ("image", "audio", "video")


def get_kind(name: str) -> MediaKind:
    if name not in KIND_NAMES:
        raise InvalidRequest(f"unknown media_type {name!r}; expected one of {', '.join(KIND_NAMES)}")
    module = importlib.import_module(f"shared.kinds.{name}")
    kind: MediaKind = module.KIND
    return kind


#: Where each kind's fingerprint type lives (its ``version`` keys the fingerprint cache).
_FINGERPRINT_TYPES = {
    "image": ("shared.kinds.image.fingerprint", "ImageFingerprint"),
    "audio": ("shared.kinds.audio.fingerprint", "AudioFingerprint"),
    "video": ("shared.kinds.video.fingerprint", "VideoFingerprint"),
}


def fingerprint_version(name: str) -> int:
    """The version of ``name``'s current fingerprint format."""
    module, cls = _FINGERPRINT_TYPES[name]
    return int(getattr(importlib.import_module(module), cls).version)
