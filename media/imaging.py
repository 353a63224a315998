"""Decode, validate and optimize images with Pillow. No Django, no storage.

Every image the site keeps (uploaded headers, generated scenes) passes
through ``optimize_image``: it refuses oversized input and decompression
bombs before decoding pixels, fixes EXIF orientation, drops metadata (EXIF
can carry GPS positions), flattens transparency onto white, shrinks the
long side to the kind's limit and writes a progressive, optimized JPEG.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "KIND_MAX_SIDE",
    "ImageRejected",
    "OptimizedImage",
    "decode_image_input",
    "optimize_image",
]

# Longest side, in pixels, kept for each kind of stored image.
KIND_MAX_SIDE = {"header": 800, "generated": 1920}
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
JPEG_QUALITY = 85

_DATA_URL = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,", re.ASCII)


class ImageRejected(Exception):
    """The input is not an image we accept; ``message`` is safe to show users."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class OptimizedImage:
    data: bytes
    width: int
    height: int
    original_size: int
    original_format: str
    original_width: int
    original_height: int

    @property
    def byte_size(self) -> int:
        return len(self.data)

    @property
    def compression_ratio(self) -> float:
        return self.byte_size / self.original_size if self.original_size else 1.0


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def _too_large(max_bytes: int) -> ImageRejected:
    return ImageRejected("too_large", _("The image is larger than %(size)s.") % {"size": _mb(max_bytes)})


def decode_image_input(data: bytes | str, *, max_bytes: int) -> bytes:
    """Raw bytes from bytes or base64 text (``data:`` URL prefix allowed).

    The size check runs on the encoded length first, so a huge base64 string
    is refused without being decoded.
    """
    if isinstance(data, str):
        text = _DATA_URL.sub("", data.strip(), count=1)
        # base64 grows data by 4/3; refuse before allocating the decoded copy.
        if len(text) > (max_bytes * 4) // 3 + 4:
            raise _too_large(max_bytes)
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageRejected("bad_base64", _("The image data is not valid base64.")) from exc
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise TypeError(f"expected bytes or str, got {type(data).__name__}")
    if not raw:
        raise ImageRejected("empty", _("The image is empty."))
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    return raw


def _open_checked(raw: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The image, its header read and checked, and its format (one of ``ACCEPTED_FORMATS``)."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; a bomb is a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", _("The image has too many pixels.")) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # A plugin that recognises the first bytes may still find the header broken
        # (an IPTC stream with an illegal field length raises a bare OSError).
        raise ImageRejected("not_an_image", _("The file is not an image we can read.")) from exc
    image_format = image.format
    if image_format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            "unsupported_format",
            _("%(format)s images are not supported; use JPEG, PNG, WebP or GIF.")
            % {"format": image_format or "?"},
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected("not_an_image", _("The file is not an image we can read."))
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            _("The image is %(width)s x %(height)s pixels; the limit is %(limit)s megapixels.")
            % {"width": width, "height": height, "limit": max_pixels // 1_000_000},
        )
    return image, image_format


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on a white background, whatever the mode."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def optimize_image(
    raw: bytes,
    *,
    max_side: int,
    max_bytes: int,
    max_pixels: int,
    quality: int = JPEG_QUALITY,
) -> OptimizedImage:
    """Validate ``raw`` and re-encode it as a metadata-free progressive JPEG.

    Raises ``ImageRejected`` for anything that is too big, not an image,
    truncated, or in a format we do not take.
    """
    if not raw:
        raise ImageRejected("empty", _("The image is empty."))
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    image, original_format = _open_checked(raw, max_pixels)
    original_width, original_height = image.size
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # first frame of an animation
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _flatten(image)
        if max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        # No exif/icc arguments: Pillow writes no metadata unless asked.
        image.save(out, format="JPEG", quality=quality, optimize=True, progressive=True)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # Truncated or corrupt pixel data surfaces only when decoding.
        raise ImageRejected("not_an_image", _("The image is damaged or truncated.")) from exc
    return OptimizedImage(
        data=out.getvalue(),
        width=image.width,
        height=image.height,
        original_size=len(raw),
        original_format=original_format,
        original_width=original_width,
        original_height=original_height,
    )
