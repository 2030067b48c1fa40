"""Tests for functions.imaging: decoding, validation, orientation, resizing, thumbnails."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import struct
import warnings
import zlib
from typing import Any

import pytest
from PIL import Image, ImageOps, ImageSequence
from PIL.JpegImagePlugin import JpegImageFile

from functions import imaging
from functions.imaging import (
    MAX_PIXELS,
    MAX_TRAINING_IMAGE_BYTES,
    ImageRejected,
    ProcessedImage,
    process_image,
    resized_size,
    thumbnail_size,
)
from tests.conftest import photo_paths

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def pattern(size: tuple[int, int]) -> Image.Image:
    """An RGB image with structure (so encoders produce real data)."""
    gradient = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient))


def noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(1).randbytes(size[0] * size[1] * 3))


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny 1-bit PNG whose IHDR claims width x height (pixel data stays 16x16)."""
    data = bytearray(encode(Image.new("1", (16, 16)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def assert_close(actual: object, expected: tuple[int, ...], tolerance: int = 12) -> None:
    assert isinstance(actual, tuple), actual
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), actual


def rejected(data: bytes, **kwargs: Any) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        process_image(data, **kwargs)
    return info.value


# --- accepted formats -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("BMP", "image/bmp"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
    ],
)
def test_accepted_formats_round_trip(fmt: str, content_type: str) -> None:
    data = encode(pattern((300, 200)), fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = process_image(data)
    assert (result.width, result.height) == (300, 200)
    assert result.format == fmt
    assert result.content_type == content_type
    resized = decode(result.resized)
    assert (resized.format, resized.mode, resized.size) == ("JPEG", "RGB", (384, 256))
    thumb = decode(result.thumbnail)
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (200, 133))


def test_sha256_is_digest_of_original_bytes() -> None:
    data = encode(pattern((64, 48)), "PNG")
    assert process_image(data).sha256 == hashlib.sha256(data).hexdigest()
    other = encode(pattern((64, 49)), "PNG")
    assert process_image(other).sha256 != process_image(data).sha256


def test_processed_image_is_frozen() -> None:
    result = process_image(encode(pattern((32, 32)), "PNG"))
    assert isinstance(result, ProcessedImage)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.width = 1  # type: ignore[misc]


def test_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert sum(1 for _ in ImageSequence.Iterator(Image.open(io.BytesIO(data)))) == 2
    result = process_image(data)
    assert (result.width, result.height, result.format) == (40, 30, "GIF")
    resized = decode(result.resized)
    assert_close(resized.getpixel((resized.width // 2, resized.height // 2)), RED)


def test_animated_webp_uses_first_frame() -> None:
    frames = [Image.new("RGB", (40, 30), BLUE), Image.new("RGB", (40, 30), RED)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    result = process_image(data)
    assert result.format == "WEBP"
    resized = decode(result.resized)
    assert_close(resized.getpixel((resized.width // 2, resized.height // 2)), BLUE)


def test_multi_picture_jpeg_is_accepted_as_jpeg() -> None:
    frames = [Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"  # how phones' JPEGs often open
    result = process_image(data)
    assert (result.format, result.content_type) == ("JPEG", "image/jpeg")
    assert (result.width, result.height) == (40, 30)
    resized = decode(result.resized)
    assert_close(resized.getpixel((resized.width // 2, resized.height // 2)), RED)


# --- EXIF orientation -------------------------------------------------------------------


def jpeg_with_orientation(orientation: int) -> bytes:
    """A 40x20 JPEG, left half red and right half blue, tagged with `orientation`."""
    img = Image.new("RGB", (40, 20), RED)
    img.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_swaps_width_and_height_and_rotates_pixels() -> None:
    result = process_image(jpeg_with_orientation(6))
    assert (result.width, result.height) == (20, 40)
    resized = decode(result.resized)
    assert resized.size == (256, 512)
    # Orientation 6 means "rotate 90 degrees clockwise to display": left half goes on top.
    assert_close(resized.getpixel((128, 64)), RED, tolerance=40)
    assert_close(resized.getpixel((128, 448)), BLUE, tolerance=40)
    assert decode(result.thumbnail).size == (20, 40)


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_dimensions(orientation: int) -> None:
    result = process_image(jpeg_with_orientation(orientation))
    expected = (20, 40) if orientation >= 5 else (40, 20)
    assert (result.width, result.height) == expected
    assert decode(result.resized).size == resized_size(*expected)


def test_exif_orientation_3_rotates_180() -> None:
    resized = decode(process_image(jpeg_with_orientation(3)).resized)
    assert resized.size == (512, 256)
    assert_close(resized.getpixel((64, 128)), BLUE, tolerance=40)
    assert_close(resized.getpixel((448, 128)), RED, tolerance=40)


# --- rejected formats -------------------------------------------------------------------


def test_truncated_jpeg_is_format_error() -> None:
    data = encode(noise((256, 256)), "JPEG", quality=90)
    error = rejected(data[: len(data) // 2])
    assert error.status == "ErrorImageFormat"
    assert "JPEG" in error.message
    assert "truncated" in error.message


def test_truncated_large_jpeg_is_format_error_with_draft_decoding() -> None:
    data = encode(noise((2000, 1500)), "JPEG", quality=75)
    assert rejected(data[: len(data) * 3 // 4]).status == "ErrorImageFormat"


def test_truncated_png_is_format_error() -> None:
    data = encode(noise((128, 128)), "PNG")
    error = rejected(data[: len(data) // 2])
    assert error.status == "ErrorImageFormat"
    assert "PNG" in error.message


def test_random_bytes_are_format_error() -> None:
    error = rejected(random.Random(0).randbytes(4096))
    assert error.status == "ErrorImageFormat"
    assert "could not be identified" in error.message


def test_tiff_is_format_error_naming_the_format() -> None:
    error = rejected(encode(pattern((64, 64)), "TIFF"))
    assert error.status == "ErrorImageFormat"
    assert "TIFF" in error.message


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA"])
def test_other_pillow_formats_are_format_error(fmt: str) -> None:
    error = rejected(encode(pattern((64, 64)), fmt))
    assert error.status == "ErrorImageFormat"
    assert "Unsupported image format" in error.message


# --- size limits ------------------------------------------------------------------------


def test_empty_bytes_are_size_error() -> None:
    error = rejected(b"")
    assert error.status == "ErrorImageSize"
    assert "empty" in error.message


def test_one_byte_over_max_bytes_is_size_error() -> None:
    data = encode(pattern((64, 64)), "PNG")
    assert process_image(data, max_bytes=len(data)).width == 64
    error = rejected(data, max_bytes=len(data) - 1)
    assert error.status == "ErrorImageSize"
    assert str(len(data)) in error.message
    assert str(len(data) - 1) in error.message


def test_default_limit_is_six_megabytes() -> None:
    assert MAX_TRAINING_IMAGE_BYTES == 6 * 1024 * 1024
    # Not an image at all: the byte limit is checked before anything is parsed.
    error = rejected(b"\0" * (MAX_TRAINING_IMAGE_BYTES + 1))
    assert error.status == "ErrorImageSize"
    assert "6.00 MB" in error.message
    assert str(MAX_TRAINING_IMAGE_BYTES) in error.message


@pytest.mark.parametrize(
    "size",
    [
        (6325, 6325),  # just over MAX_PIXELS: our own header check
        (12_000, 12_000),  # over Pillow's warning threshold (DecompressionBombWarning)
        (20_000, 20_000),  # over Pillow's error threshold (DecompressionBombError)
    ],
)
def test_decompression_bomb_is_size_error_without_decoding(size: tuple[int, int]) -> None:
    limit_before = Image.MAX_IMAGE_PIXELS
    data = png_with_header_size(*size)
    assert len(data) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may leak
        error = rejected(data)
    # The pixel data really is 16x16: decoding it would have raised ErrorImageFormat.
    assert error.status == "ErrorImageSize"
    assert "too many pixels" in error.message
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_pixel_limit_boundary_is_max_pixels() -> None:
    assert 6324 * 6325 <= MAX_PIXELS < 6325 * 6325
    # Under the limit the header passes, so decoding starts and finds the data truncated.
    assert rejected(png_with_header_size(6324, 6325)).status == "ErrorImageFormat"
    assert rejected(png_with_header_size(6325, 6325)).status == "ErrorImageSize"


def test_import_leaves_pillow_global_limit_alone() -> None:
    assert Image.MAX_IMAGE_PIXELS == (1024 * 1024 * 1024 // 4 // 3)


# --- dimensions -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(15, 100), (100, 15), (15, 15), (10_241, 16), (16, 10_241)])
def test_bad_dimensions_are_dimension_error(size: tuple[int, int]) -> None:
    error = rejected(encode(Image.new("L", size), "PNG"))
    assert error.status == "ErrorImageDimensions"
    assert f"{size[0]}x{size[1]}" in error.message


@pytest.mark.parametrize("size", [(16, 16), (10_240, 16)])
def test_extreme_but_valid_dimensions_are_accepted(size: tuple[int, int]) -> None:
    result = process_image(encode(Image.new("L", size, 128), "PNG"))
    assert (result.width, result.height) == size
    assert decode(result.resized).size == resized_size(*size)
    assert decode(result.thumbnail).size == thumbnail_size(*size)


# --- colour modes -----------------------------------------------------------------------


def resized_centre(data: bytes) -> tuple[int, ...]:
    resized = decode(process_image(data).resized)
    assert resized.mode == "RGB"
    pixel = resized.getpixel((resized.width // 2, resized.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


def test_rgba_alpha_is_composited_onto_white() -> None:
    img = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    assert_close(resized_centre(encode(img, "PNG")), (255, 255, 255))
    half = Image.new("RGBA", (64, 64), (0, 0, 0, 128))  # half-transparent black
    assert_close(resized_centre(encode(half, "PNG")), (127, 127, 127))


def test_palette_with_transparency_is_composited_onto_white() -> None:
    img = Image.new("P", (64, 64), 1)
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    opaque = encode(img, "PNG")
    assert_close(resized_centre(opaque), RED)
    transparent = encode(img, "PNG", transparency=1)
    assert_close(resized_centre(transparent), (255, 255, 255))


def test_la_is_converted() -> None:
    img = Image.new("LA", (64, 64), (0, 255))
    assert_close(resized_centre(encode(img, "PNG")), (0, 0, 0))
    img = Image.new("LA", (64, 64), (0, 0))
    assert_close(resized_centre(encode(img, "PNG")), (255, 255, 255))


def test_cmyk_jpeg_is_converted() -> None:
    img = Image.new("CMYK", (64, 64), (255, 0, 0, 0))  # pure cyan
    data = encode(img, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert_close(resized_centre(data), (0, 255, 255))


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    img = Image.new("I;16", (64, 64), 32768)
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    # A plain convert("L") would clip 32768 to 255 (white); scaled it is mid grey.
    assert_close(resized_centre(data), (128, 128, 128), tolerance=3)


def test_one_bit_bmp_is_converted() -> None:
    img = Image.new("1", (64, 64), 1)
    assert_close(resized_centre(encode(img, "BMP")), (255, 255, 255))


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", (0, 200), (0, 200)),  # already in 0..255: unchanged
        ("I", (-1000, 70_000), (0, 255)),  # out of range: stretched linearly
        ("F", (0.0, 100.0), (0, 100)),
        ("F", (-1.0, 1.0), (0, 255)),
    ],
)
def test_integer_and_float_modes_are_converted(
    mode: str, values: tuple[float, float], expected: tuple[int, int]
) -> None:
    img = Image.new(mode, (2, 1))
    img.putpixel((0, 0), values[0])
    img.putpixel((1, 0), values[1])
    rgb = imaging._to_rgb(img)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (expected[0],) * 3
    assert rgb.getpixel((1, 0)) == (expected[1],) * 3


# --- sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((100, 150), (256, 384)),  # upscaled: shorter side to 256
        ((150, 100), (384, 256)),
        ((16, 16), (256, 256)),
        ((4000, 3000), (683, 512)),  # downscaled: shorter side to 512
        ((3000, 4000), (512, 683)),
        ((513, 513), (512, 512)),
        ((256, 256), (256, 256)),  # inside [256, 512]: unchanged
        ((300, 400), (300, 400)),
        ((512, 5000), (512, 5000)),
        ((100, 1000), (205, 2048)),  # upscale capped by the longer side
        ((16, 10_240), (16, 10_240)),  # cap never shrinks an image
    ],
)
def test_resized_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert resized_size(*size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((100, 150), (100, 150)),  # small images are kept as they are
        ((200, 200), (200, 200)),
        ((16, 16), (16, 16)),
        ((400, 200), (200, 100)),
        ((300, 200), (200, 133)),
        ((3000, 4000), (150, 200)),
        ((201, 50), (200, 50)),
        ((10_240, 16), (200, 1)),
    ],
)
def test_thumbnail_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert thumbnail_size(*size) == expected


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-1, 5)])
def test_size_functions_reject_non_positive_sizes(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        resized_size(*size)
    with pytest.raises(ValueError):
        thumbnail_size(*size)


def test_large_jpeg_keeps_true_size_and_derives_small_copies() -> None:
    data = encode(pattern((4000, 3000)), "JPEG", quality=90)
    result = process_image(data)
    assert (result.width, result.height) == (4000, 3000)
    assert decode(result.resized).size == (683, 512)
    assert decode(result.thumbnail).size == (200, 150)


def test_large_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    scales: list[float] = []
    original_draft = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> Any:
        result = original_draft(self, mode, size)
        scales.append(self.decoderconfig[0] if self.decoderconfig else 1)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    result = process_image(encode(pattern((4000, 3000)), "JPEG", quality=90))
    assert scales == [2]  # 4000x3000 decodes as 2000x1500, still >= 2x the 683x512 target
    # ...yet the reported size is the real one.
    assert (result.width, result.height) == (4000, 3000)
    assert decode(result.resized).size == (683, 512)


# --- rejection object -------------------------------------------------------------------


def test_image_rejected_keeps_status_and_message() -> None:
    error = ImageRejected("ErrorImageFormat", "nope")
    assert (error.status, error.message, str(error)) == ("ErrorImageFormat", "nope", "nope")
    assert "ErrorImageFormat" in repr(error)


# --- real photos ------------------------------------------------------------------------


def test_real_daisy_photos() -> None:
    # Photos as Flickr served them and photos downsized by Pillow (tests/fixtures/README.md);
    # most are upscaled to a 256 px shorter side, at least one is kept at its size.
    kept: set[bool] = set()
    for path in photo_paths("daisy", 20):
        data = path.read_bytes()
        with Image.open(path) as original:
            expected = ImageOps.exif_transpose(original).size
        result = process_image(data)
        assert (result.width, result.height) == expected, path.name
        assert (result.format, result.content_type) == ("JPEG", "image/jpeg")
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert decode(result.resized).size == resized_size(*expected)
        assert decode(result.thumbnail).size == thumbnail_size(*expected)
        kept.add(resized_size(*expected) == expected)
    assert kept == {True, False}


def test_real_daisy_photo_truncated_is_format_error() -> None:
    data = photo_paths("daisy", 1)[0].read_bytes()
    assert rejected(data[: len(data) // 2]).status == "ErrorImageFormat"
