"""Pillow pipeline: every way an image can be wrong, and what a good one becomes."""

import base64
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from media.imaging import ImageRejected, decode_image_input, optimize_image

MB = 1024 * 1024
LIMITS = {"max_bytes": 10 * MB, "max_pixels": 40_000_000}


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def rgb(width=64, height=48, color=(200, 40, 40)) -> Image.Image:
    return Image.new("RGB", (width, height), color)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_accepted_formats_become_jpeg(fmt):
    result = optimize_image(encode(rgb(), fmt), max_side=800, **LIMITS)
    assert Image.open(io.BytesIO(result.data)).format == "JPEG"
    assert (result.width, result.height) == (64, 48)
    assert result.original_format == fmt


def test_long_side_is_shrunk_keeping_aspect():
    result = optimize_image(encode(rgb(1600, 1000), "PNG"), max_side=800, **LIMITS)
    assert (result.width, result.height) == (800, 500)


def test_small_images_are_not_enlarged():
    result = optimize_image(encode(rgb(300, 200), "PNG"), max_side=1920, **LIMITS)
    assert (result.width, result.height) == (300, 200)


def test_output_is_progressive_and_has_no_metadata():
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N"}  # GPS IFD
    result = optimize_image(encode(rgb(), "JPEG", exif=exif.tobytes()), max_side=800, **LIMITS)
    out = Image.open(io.BytesIO(result.data))
    assert out.info.get("progressive") or out.info.get("progression")
    assert not out.getexif()
    assert b"SecretCam" not in result.data


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    result = optimize_image(encode(rgb(100, 50), "JPEG", exif=exif.tobytes()), max_side=800, **LIMITS)
    assert (result.width, result.height) == (50, 100)


def test_transparency_is_flattened_on_white():
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    result = optimize_image(encode(clear, "PNG"), max_side=800, **LIMITS)
    pixel = Image.open(io.BytesIO(result.data)).convert("RGB").getpixel((5, 5))
    assert all(channel > 245 for channel in pixel)


def test_animated_gif_keeps_the_first_frame():
    frames = [rgb(color=(255, 0, 0)), rgb(color=(0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    result = optimize_image(data, max_side=800, **LIMITS)
    red, _, blue = Image.open(io.BytesIO(result.data)).getpixel((10, 10))
    assert red > 200 > blue


def test_palette_and_greyscale_modes_are_converted():
    for image in (rgb().convert("P"), rgb().convert("L"), rgb().convert("CMYK")):
        fmt = "JPEG" if image.mode == "CMYK" else "PNG"
        assert optimize_image(encode(image, fmt), max_side=800, **LIMITS).width == 64


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty"),
        (b"plain text, not an image", "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_an_image"),
    ],
)
def test_garbage_is_rejected(raw, code):
    with pytest.raises(ImageRejected) as caught:
        optimize_image(raw, max_side=800, **LIMITS)
    assert caught.value.code == code


def test_a_header_a_plugin_finds_broken_is_rejected():
    # Found by test_arbitrary_bytes_never_crash: Pillow's IPTC plugin raises a bare OSError.
    with pytest.raises(ImageRejected) as caught:
        optimize_image(b"\x1c\x01\x00\x85\x00", max_side=800, **LIMITS)
    assert caught.value.code == "not_an_image"


def test_truncated_image_is_rejected():
    data = encode(rgb(400, 400, (1, 2, 3)), "PNG")
    with pytest.raises(ImageRejected) as caught:
        optimize_image(data[: len(data) // 2], max_side=800, **LIMITS)
    assert caught.value.code == "not_an_image"


def test_unsupported_formats_are_named():
    with pytest.raises(ImageRejected) as caught:
        optimize_image(encode(rgb(), "BMP"), max_side=800, **LIMITS)
    assert caught.value.code == "unsupported_format"
    assert "BMP" in caught.value.message


def test_too_many_bytes_is_rejected_before_decoding():
    with pytest.raises(ImageRejected) as caught:
        optimize_image(b"x" * 2001, max_side=800, max_bytes=2000, max_pixels=10**9)
    assert caught.value.code == "too_large"


def test_decompression_bomb_is_rejected_from_the_header():
    # A 10000 x 10000 one-colour PNG compresses to a few kB but would need 300 MB decoded.
    bomb = encode(Image.new("L", (10_000, 10_000)), "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(ImageRejected) as caught:
        optimize_image(bomb, max_side=800, **LIMITS)
    assert caught.value.code == "too_many_pixels"


def test_a_39_megapixel_png_is_refused_by_default_before_decoding(settings, monkeypatch):
    """The penetration test's picture: 38 KB on the wire, 174 MB decoded. Refused from its header."""
    from PIL import ImageFile

    bomb = encode(Image.new("1", (7280, 5456)), "PNG")  # 39.7 megapixels
    assert len(bomb) < 100_000

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageRejected) as caught:
        optimize_image(
            bomb, max_side=800, max_bytes=settings.IMAGE_MAX_BYTES, max_pixels=settings.IMAGE_MAX_PIXELS
        )
    assert caught.value.code == "too_many_pixels"


def test_the_default_pixel_cap_takes_a_phone_photo():
    from django.conf import settings

    assert 4032 * 3024 <= settings.IMAGE_MAX_PIXELS <= 25_000_000


def test_decode_accepts_bytes_base64_and_data_urls():
    raw = encode(rgb(), "PNG")
    text = base64.b64encode(raw).decode()
    assert decode_image_input(raw, max_bytes=MB) == raw
    assert decode_image_input(text, max_bytes=MB) == raw
    assert decode_image_input(f"data:image/png;base64,{text}", max_bytes=MB) == raw


@pytest.mark.parametrize(
    ("data", "code"),
    [("", "empty"), ("not*base64", "bad_base64"), ("QUJD" * 1000, "too_large"), (b"x" * 5000, "too_large")],
)
def test_decode_rejections(data, code):
    with pytest.raises(ImageRejected) as caught:
        decode_image_input(data, max_bytes=1000)
    assert caught.value.code == code


def test_decode_rejects_other_types():
    with pytest.raises(TypeError):
        decode_image_input(123, max_bytes=1000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(raw):
    try:
        optimize_image(raw, max_side=800, **LIMITS)
    except ImageRejected as rejected:
        assert rejected.code in {"empty", "not_an_image", "unsupported_format", "too_many_pixels"}
