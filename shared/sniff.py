"""Content sniffing from the first bytes of a file.

The type of an input is decided from its bytes only: never from the URL's extension, a ``Content-Type``
header or an upload's file name. Anything not recognised here is refused before a decoder sees it, which
also keeps FFmpeg away from playlists (HLS, concat lists) and other text formats that could make it open
further files or URLs.
"""

from __future__ import annotations

#: How many leading bytes ``sniff`` needs.
SNIFF_BYTES = 64


def sniff(head: bytes) -> str | None:
    """Return a MIME type for the leading bytes ``head``, or ``None`` when the format is unknown."""
    h = head
    if h.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return "image/webp"
    if h[:2] == b"BM" and len(h) >= 14:
        return "image/bmp"
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"M4A ", b"M4B ", b"M4P ", b"F4A "):
            return "audio/mp4"
        if brand.startswith(b"qt"):
            return "video/quicktime"
        return "video/mp4"
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm" if b"webm" in h[:64] else "video/x-matroska"
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return "video/x-msvideo"
    if h[:4] == b"RIFF" and h[8:12] == b"WAVE":
        return "audio/wav"
    if h[:4] == b"OggS":
        return "audio/ogg"
    if h[:4] == b"fLaC":
        return "audio/flac"
    if h[:3] == b"ID3":
        return "audio/mpeg"
    if len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xF6) == 0xF0:
        return "audio/aac"  # ADTS
    if len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xE0) == 0xE0:
        return "audio/mpeg"  # MPEG audio frame sync
    if h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if h[:3] == b"FLV":
        return "video/x-flv"
    if h[:4] == b"\x00\x00\x01\xba":
        return "video/mpeg"
    if len(h) >= 1 and h[0] == 0x47 and (len(h) < 189 or h[188] == 0x47):
        return "video/mp2t"
    if h[:4] == b"\x30\x26\xb2\x75":
        return "video/x-ms-asf"
    return None


IMAGE_MIMES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/heic", "image/avif"}
)
AUDIO_ONLY_MIMES = frozenset(
    {"audio/mp4", "audio/wav", "audio/ogg", "audio/flac", "audio/mpeg", "audio/aac", "audio/aiff"}
)
VIDEO_MIMES = frozenset(
    {
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/x-flv",
        "video/mpeg",
        "video/mp2t",
        "video/x-ms-asf",
    }
)
