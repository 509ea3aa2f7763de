"""Seeded image transforms for the benchmark: each takes an RGB ``PIL.Image`` and a numpy ``Generator``.

Role: the "what must match" list of issue 3, one function per transform, parameters drawn from the caller's
seeded generator (so a seed reproduces the set), plus the family each transform belongs to and the recall
target of that family. ``apply`` returns the image and how to save it (format and quality are part of the
transform for the re-encoding ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
_WORDS = ("SAMPLE", "© Photo Agency", "stock image", "DO NOT COPY", "mediamatch.example", "preview")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(_FONT, max(8, size))
    except OSError:
        return ImageFont.load_default(size=max(8, size))


def _resize(img: Image.Image, factor: float) -> Image.Image:
    size = (max(8, round(img.width * factor)), max(8, round(img.height * factor)))
    return img.resize(size, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC)


def _crop(img: Image.Image, rng: np.random.Generator, keep_area: float) -> Image.Image:
    """Keep ``keep_area`` of the area, off-centre, with the aspect ratio changed by up to 1.3x."""
    for _ in range(20):
        aspect = float(np.exp(rng.uniform(np.log(1 / 1.3), np.log(1.3))))
        fw, fh = np.sqrt(keep_area) * aspect, np.sqrt(keep_area) / aspect
        if fw <= 1.0 and fh <= 1.0:
            break
    else:
        fw = fh = np.sqrt(keep_area)
    w, h = round(img.width * fw), round(img.height * fh)
    x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
    return img.crop((x, y, x + w, y + h))


def _pad(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    left, top, right, bottom = (round(s * f) for s, f in zip(img.size * 2, rng.uniform(0.05, 0.30, 4), strict=True))
    out = Image.new("RGB", (img.width + left + right, img.height + top + bottom), color)
    out.paste(img, (left, top))
    return out


def _letterbox(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    target = float(rng.choice([16 / 9, 4 / 3, 1.0, 9 / 16]))
    aspect = img.width / img.height
    if abs(np.log(aspect / target)) < 0.1:
        target = target * 1.4
    w, h = (round(img.height * target), img.height) if target > aspect else (img.width, round(img.width / target))
    out = Image.new("RGB", (w, h), (0, 0, 0))
    out.paste(img, ((w - img.width) // 2, (h - img.height) // 2))
    return out


def _watermark(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(int(img.width * rng.uniform(0.04, 0.08)))
    alpha = int(rng.integers(90, 200))
    for _ in range(int(rng.integers(1, 4))):
        text = str(rng.choice(_WORDS))
        x, y = rng.uniform(0.0, 0.6) * img.width, rng.uniform(0.05, 0.9) * img.height
        draw.text((x, y), text, font=font, fill=(255, 255, 255, alpha), stroke_width=1, stroke_fill=(0, 0, 0, alpha))
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def _logo(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An opaque generated logo covering 8-15% of the area, somewhere near an edge or corner."""
    area = rng.uniform(0.08, 0.15) * img.width * img.height
    aspect = rng.uniform(1.0, 2.5)
    w, h = int(np.sqrt(area * aspect)), int(np.sqrt(area / aspect))
    w, h = min(w, img.width), min(h, img.height)
    bg = tuple(int(c) for c in rng.integers(0, 256, 3))
    fg = tuple(255 - c for c in bg)
    logo = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(logo)
    draw.ellipse((h * 0.1, h * 0.1, h * 0.9, h * 0.9), fill=fg)
    draw.text((h, h * 0.3), str(rng.choice(["ACME", "TV5", "NEWS", "Brand"])), font=_font(int(h * 0.4)), fill=fg)
    x = int(rng.choice([0, img.width - w, int(rng.integers(0, img.width - w + 1))]))
    y = int(rng.choice([0, img.height - h, int(rng.integers(0, img.height - h + 1))]))
    out = img.copy()
    out.paste(logo, (x, y))
    return out


def _rotate_small(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = float(rng.uniform(1.0, 5.0) * rng.choice([-1, 1]))
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def _screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The image inside a UI-like canvas: title bar, side bar with text lines, buttons, caption."""
    frac = rng.uniform(0.45, 0.75)  # image width / canvas width
    cw = int(img.width / frac)
    ch = int(max(img.height / rng.uniform(0.55, 0.8), img.height + 120))
    bg = tuple(int(c) for c in rng.integers(200, 256, 3)) if rng.random() < 0.6 else (30, 30, 36)
    canvas = Image.new("RGB", (cw, ch), bg)
    draw = ImageDraw.Draw(canvas)
    bar = max(24, ch // 20)
    draw.rectangle((0, 0, cw, bar), fill=tuple(int(c) for c in rng.integers(0, 120, 3)))
    ink = (20, 20, 20) if sum(bg) > 384 else (220, 220, 220)
    font = _font(bar // 2)
    draw.text((bar, bar // 4), "Gallery - photo viewer", font=font, fill=(255, 255, 255))
    side = cw - img.width - int(rng.integers(10, 40))
    x0 = int(rng.integers(side // 2, max(side // 2 + 1, side)))
    y0 = bar + int(rng.integers(10, max(11, ch - img.height - bar - 40)))
    for k in range(int(rng.integers(6, 14))):
        draw.text((10, bar + 20 + k * bar), f"item {k} " + "text " * int(rng.integers(1, 4)), font=font, fill=ink)
    for k in range(3):
        draw.rounded_rectangle((x0 + k * 90, ch - bar - 5, x0 + k * 90 + 80, ch - 5), 6, fill=(70, 120, 200))
    canvas.paste(img, (x0, min(y0, ch - img.height)))
    return canvas


def _colour(kind: str) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if kind == "grayscale":
            return img.convert("L").convert("RGB")
        if kind == "hue":
            hsv = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2HSV)
            shift = int(rng.integers(10, 40)) * int(rng.choice([-1, 1]))  # OpenCV hue is 0..179
            hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 180
            return Image.fromarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
        factor = float(rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.25, 1.5)]))
        enhancer = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
                    "saturation": ImageEnhance.Color}[kind]
        return enhancer(img).enhance(factor)
    return edit


def _combo_crop_mirror(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _crop(img, rng, float(rng.uniform(0.75, 0.9))).transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _combo_rot_resize_colour(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _colour("contrast")(_resize(img.transpose(Image.Transpose.ROTATE_90), 0.5), rng)


def _combo_crop_watermark_pad(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _pad(_watermark(_crop(img, rng, float(rng.uniform(0.85, 0.95))), rng), rng)


def _combo_screenshot_small(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _resize(_screenshot(_rotate_small(img, rng), rng), 0.6)


_JPEG = {"ext": "jpg", "save": {"quality": 90}}
#: name -> (family, transform, save params)
TRANSFORMS: dict[str, tuple[str, Callable[[Image.Image, np.random.Generator], Image.Image], dict[str, Any]]] = {
    "jpeg_q15": ("reencode", lambda im, r: im, {"ext": "jpg", "save": {"quality": 15}}),
    "webp_q50": ("reencode", lambda im, r: im, {"ext": "webp", "save": {"quality": 50}}),
    "png": ("reencode", lambda im, r: im, {"ext": "png", "save": {}}),
    "resize_0.25": ("resize", lambda im, r: _resize(im, 0.25), _JPEG),
    "resize_0.5": ("resize", lambda im, r: _resize(im, 0.5), _JPEG),
    "resize_2": ("resize", lambda im, r: _resize(im, 2.0), _JPEG),
    "resize_4": ("resize", lambda im, r: _resize(im, 4.0), {"ext": "jpg", "save": {"quality": 85}}),
    "brightness": ("colour", _colour("brightness"), _JPEG),
    "contrast": ("colour", _colour("contrast"), _JPEG),
    "saturation": ("colour", _colour("saturation"), _JPEG),
    "hue": ("colour", _colour("hue"), _JPEG),
    "grayscale": ("colour", _colour("grayscale"), _JPEG),
    "watermark": ("watermark", _watermark, _JPEG),
    "mirror": ("mirror_rot90", lambda im, r: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), _JPEG),
    "rot90": ("mirror_rot90", lambda im, r: im.transpose(Image.Transpose.ROTATE_270), _JPEG),
    "rot180": ("mirror_rot90", lambda im, r: im.transpose(Image.Transpose.ROTATE_180), _JPEG),
    "rot270": ("mirror_rot90", lambda im, r: im.transpose(Image.Transpose.ROTATE_90), _JPEG),
    "crop_10": ("crop_le25", lambda im, r: _crop(im, r, 0.90), _JPEG),
    "crop_25": ("crop_le25", lambda im, r: _crop(im, r, 0.75), _JPEG),
    "crop_50": ("crop_50", lambda im, r: _crop(im, r, 0.50), _JPEG),
    "pad": ("padding", _pad, _JPEG),
    "letterbox": ("padding", _letterbox, _JPEG),
    "logo": ("logo", _logo, _JPEG),
    "rotate_small": ("small_rotation", _rotate_small, _JPEG),
    "screenshot": ("screenshot", _screenshot, {"ext": "png", "save": {}}),
    "combo_crop_mirror_jpeg": ("combination", _combo_crop_mirror, {"ext": "jpg", "save": {"quality": 40}}),
    "combo_rot90_half_contrast": ("combination", _combo_rot_resize_colour, {"ext": "webp", "save": {"quality": 70}}),
    "combo_crop_watermark_pad": ("combination", _combo_crop_watermark_pad, {"ext": "jpg", "save": {"quality": 60}}),
    "combo_screenshot_rotate": ("combination", _combo_screenshot_small, {"ext": "jpg", "save": {"quality": 75}}),
}
NAMES = tuple(TRANSFORMS)
#: Recall targets of issue 3 per family (fraction); combinations have none.
TARGETS = {"reencode": 0.99, "resize": 0.99, "colour": 0.99, "watermark": 0.99, "mirror_rot90": 0.99,
           "crop_le25": 0.97, "padding": 0.97, "logo": 0.97, "small_rotation": 0.97, "screenshot": 0.97,
           "crop_50": 0.90}


def family(name: str) -> str:
    return TRANSFORMS[name][0]


def apply(name: str, img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict[str, Any]]:
    _, fn, params = TRANSFORMS[name]
    return fn(img, rng), params
