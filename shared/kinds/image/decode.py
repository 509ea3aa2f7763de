"""Decode an image file into a float luma plane, the only input the image hash needs.

Role: the one boundary between Pillow (and pillow-heif) and the matcher. Every Pillow/OS error is
translated here into ``shared.errors``; nothing outside this module touches a ``PIL.Image``.
Imports nothing from Flask or Celery.

Decoding rules, each fixing a known trap (see /work/shared/FIELD_NOTES.md, "Input traps"):

* The decoder is chosen from the *sniffed* MIME type, and ``Image.open`` gets an explicit ``formats``
  list, so a file can never reach a plugin it was not sniffed as.
* The pixel count is checked against ``ImageSettings.max_pixels`` from the header, before any pixel is
  decoded. Pillow's own bomb guard (``DecompressionBombError``) is mapped to ``MediaLimitExceeded`` too;
  its *warning* is silenced because our own limit is the authoritative one. (Pillow still refuses
  anything above ``2 * Image.MAX_IMAGE_PIXELS``, so the effective limit is the smaller of the two.)
* EXIF orientation is applied (the most common false negative in user reports).
* Alpha (RGBA, LA, PA, P with a transparent index) is composited on neutral mid-grey, so transparent
  images do not all hash the same and the padding looks like a uniform border that gets trimmed.
* CMYK, palette, bilevel, 16-bit (``I;16*``, ``I``) and float modes are brought to 8-bit-scale luma.
* Animated GIF/WebP/APNG and multi-page TIFF: only the **first frame** is used.
* Large images are decoded at reduced scale (JPEG DCT scaling via ``draft``, long side >= ``DRAFT_SIDE_PX``)
  and box-reduced so the long side stays >= ``WORK_SIDE_PX``; neither the 64x64 hash nor the 512 px local
  features need more.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.errors import DecodeFailed, EmptyMedia, MediaLimitExceeded, UnsupportedMedia
from shared.protocol import LocalMedia
from shared.settings import ImageSettings

#: The working resolution: decoded planes keep at least this many pixels on their long side.
WORK_SIDE_PX = 512
#: JPEG DCT-domain scaling may go down to this long side: the local features work at 512 px
#: (``features.FEATURE_SIDE_PX``) and lose nothing measurable from a 384-512 px plane upsampled by < 1.33x,
#: while decoding a 2 MP JPEG at 1/4 instead of 1/2 scale saves about 4 ms.
DRAFT_SIDE_PX = 384
#: Neutral background for transparent pixels (luma and RGB alike).
ALPHA_BACKGROUND = 128.0

#: Pillow format names allowed per sniffed MIME type.
_FORMATS_BY_MIME: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG", "MPO"),
    "image/png": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/bmp": ("BMP",),
    "image/tiff": ("TIFF",),
    "image/heic": ("HEIF",),
    "image/avif": ("AVIF", "HEIF"),
}

# EXIF orientation tag value -> the transpose that makes the image upright (as ``ImageOps.exif_transpose``).
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112

_heif_registered = False


@dataclass(frozen=True)
class DecodedImage:
    """Upright luma in [0, 255] at working resolution, plus the upright size of the original."""

    luma: np.ndarray  # float32, shape (h, w)
    width: int
    height: int


def _register_heif() -> None:
    """Register pillow-heif's opener once; without it HEIF is simply not an allowed format."""
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except Exception:  # noqa: BLE001 - an optional codec; absent means HEIC decodes fail cleanly
            pass
        _heif_registered = True


def _allowed_formats(mime: str) -> list[str]:
    if mime not in _FORMATS_BY_MIME:
        raise UnsupportedMedia(f"{mime!r} is not an image type", mime=mime)
    if mime in ("image/heic", "image/avif"):
        _register_heif()
    Image.init()
    formats = [f for f in _FORMATS_BY_MIME[mime] if f in Image.OPEN]
    if not formats:
        raise UnsupportedMedia(f"no decoder for {mime} is installed", mime=mime)
    return formats


def decode_luma(media: LocalMedia, settings: ImageSettings) -> DecodedImage:
    """Decode the first frame of ``media`` into upright luma; raises only ``shared.errors`` types."""
    if media.size_bytes == 0:
        raise EmptyMedia("the image file is empty")
    formats = _allowed_formats(media.mime)
    try:
        with warnings.catch_warnings():
            # Our max_pixels check below is authoritative; Pillow's warning would be noise (or, under
            # ``filterwarnings = error``, an exception we did not choose). ``catch_warnings`` swaps a
            # process-wide filter list: harmless in prefork workers; in a threaded host another thread
            # may briefly see this filter, which only hides the same Pillow warning there.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(media.path, formats=formats) as img:
                return _decode_open_image(img, settings)
    except Image.DecompressionBombError as exc:
        raise MediaLimitExceeded(f"image is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise DecodeFailed(f"not a decodable {media.mime} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        # Pillow signals truncated/corrupt data with all of these, depending on the plugin.
        raise DecodeFailed(f"image could not be decoded: {exc}") from exc
    except MemoryError as exc:
        raise MediaLimitExceeded("image needs too much memory to decode") from exc


def _decode_open_image(img: Image.Image, settings: ImageSettings) -> DecodedImage:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise EmptyMedia("the image has no pixels")
    if width * height > settings.max_pixels:
        raise MediaLimitExceeded(
            f"image has {width * height} pixels, more than the limit of {settings.max_pixels}",
            pixels=width * height,
            max_pixels=settings.max_pixels,
        )
    orientation = _orientation(img)
    # JPEG only (a no-op elsewhere): decode straight to luma, JPEG's Y being BT.601 luma, and at a reduced
    # DCT scale. Pillow picks the largest 1/2, 1/4 or 1/8 scale keeping both sides >= the requested size,
    # so ask for the original aspect ratio with a long side of DRAFT_SIDE_PX.
    long_side = max(width, height)
    scaled = (max(1, width * DRAFT_SIDE_PX // long_side), max(1, height * DRAFT_SIDE_PX // long_side))
    img.draft("L", scaled if long_side >= 2 * DRAFT_SIDE_PX else None)
    img.load()
    plane = _to_luma(img)
    plane = _reduce(plane)
    fix = _ORIENTATION_FIX.get(orientation)
    if fix is not None:
        plane = _transpose(plane, fix)
        if fix in (
            Image.Transpose.TRANSPOSE,
            Image.Transpose.TRANSVERSE,
            Image.Transpose.ROTATE_90,
            Image.Transpose.ROTATE_270,
        ):
            width, height = height, width
    return DecodedImage(luma=np.ascontiguousarray(plane, dtype=np.float32), width=width, height=height)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation, or 1 when absent or unreadable (a broken EXIF block is not a broken image)."""
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - Pillow raises many types on corrupt EXIF; orientation is optional
        return 1


def _to_luma(img: Image.Image) -> np.ndarray:
    """Luma in [0, 255] as float32, with alpha composited on mid-grey."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    elif mode in ("RGBa", "La"):
        img = img.convert("RGBA" if mode == "RGBa" else "LA")
    mode = img.mode
    arr = np.asarray(img)
    if mode == "L":
        return arr.astype(np.float32)
    if mode in ("RGB", "RGBA"):
        rgb = arr[..., :3].astype(np.float32)
        luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return _composite(luma, arr[..., 3]) if mode == "RGBA" else luma
    if mode == "LA":
        return _composite(arr[..., 0].astype(np.float32), arr[..., 1])
    if mode.startswith("I;16") or mode == "I":
        wide = arr.astype(np.float32)
        # "I" holds 16-bit PNG/TIFF data in recent Pillow; treat it as 8-bit only when it fits in 8 bits.
        scale = 255.0 / 65535.0 if (mode != "I" or float(wide.max(initial=0)) > 255.0) else 1.0
        return np.clip(wide * scale, 0.0, 255.0)
    if mode == "F":
        flt = np.nan_to_num(arr.astype(np.float32))
        scale = 255.0 if float(np.abs(flt).max(initial=0)) <= 1.0 else 1.0
        return np.clip(flt * scale, 0.0, 255.0)
    return _to_luma(img.convert("RGB"))


def _composite(luma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32) / 255.0
    return luma * a + ALPHA_BACKGROUND * (1.0 - a)


def _reduce(plane: np.ndarray) -> np.ndarray:
    """Box-reduce by an integer factor while the long side stays >= WORK_SIDE_PX."""
    factor = max(plane.shape) // WORK_SIDE_PX
    if factor < 2:
        return plane
    h, w = plane.shape
    h2, w2 = max(h // factor, 1), max(w // factor, 1)
    if h < factor or w < factor:  # extreme aspect ratios: reduce only the long axis
        return cv2.resize(plane, (w2, h2), interpolation=cv2.INTER_AREA)
    cropped = plane[: h2 * factor, : w2 * factor]
    return cropped.reshape(h2, factor, w2, factor).mean(axis=(1, 3), dtype=np.float32)


def _transpose(plane: np.ndarray, method: Image.Transpose) -> np.ndarray:
    """numpy equivalents of Pillow's transposes (ROTATE_* are counter-clockwise, as in Pillow)."""
    if method == Image.Transpose.FLIP_LEFT_RIGHT:
        return plane[:, ::-1]
    if method == Image.Transpose.FLIP_TOP_BOTTOM:
        return plane[::-1, :]
    if method == Image.Transpose.ROTATE_180:
        return plane[::-1, ::-1]
    if method == Image.Transpose.ROTATE_90:
        return np.rot90(plane, 1)
    if method == Image.Transpose.ROTATE_270:
        return np.rot90(plane, -1)
    if method == Image.Transpose.TRANSPOSE:
        return plane.T
    return plane[::-1, ::-1].T  # TRANSVERSE
