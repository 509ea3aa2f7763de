"""In-process matching for the CLI and for embedding in other programs: no broker, no store.

``match_refs`` takes paths or URLs; URLs go through the same safe fetcher as the service.
"""

from __future__ import annotations

import time
from typing import Any

from shared import media
from shared.errors import UnsupportedMedia
from shared.kinds import get_kind
from shared.matching import DEFAULT_OPTIONS, MatchOptions, match_media
from shared.protocol import LocalMedia
from shared.settings import Settings
from shared.sniff import AUDIO_ONLY_MIMES, IMAGE_MIMES, VIDEO_MIMES


class _AnyKind:
    """Accepts every sniffable type; used to fetch before the media type is known."""

    name = "video"  # the largest byte cap

    def accepts(self, mime: str) -> bool:
        return mime in IMAGE_MIMES | AUDIO_ONLY_MIMES | VIDEO_MIMES


def infer_media_type(mime: str) -> str:
    if mime in IMAGE_MIMES:
        return "image"
    if mime in AUDIO_ONLY_MIMES:
        return "audio"
    if mime in VIDEO_MIMES:
        return "video"
    raise UnsupportedMedia(f"cannot tell the media type of {mime}")


def match_refs(
    source: str, target: str, settings: Settings, media_type: str | None = None, options: MatchOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    started = time.perf_counter()
    with media.workdir(settings, "cli-") as tmp:
        sides: list[LocalMedia] = [
            media.resolve(ref, _AnyKind(), settings, tmp, name, allow_local_paths=True)  # type: ignore[arg-type]
            for ref, name in ((source, "source"), (target, "target"))
        ]
        kind = get_kind(media_type or infer_media_type(sides[0].mime))
        for side in sides:
            if not kind.accepts(side.mime):
                raise UnsupportedMedia(f"the bytes are {side.mime}, which is not {kind.name} media", mime=side.mime)
        return match_media(kind, sides[0], sides[1], settings, options, started_s=started)
