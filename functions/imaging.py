"""Decode, validate, orient, resize and thumbnail uploaded training images.

Pure functions over bytes: no I/O, no Azure, no web framework. ``process_image`` is the
single entry point; it either returns a :class:`ProcessedImage` or raises
:class:`ImageRejected` carrying Custom Vision's ``ImageCreateStatus`` value.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import ExifTags, Image, UnidentifiedImageError

from functions.domain.limits import MAX_TRAINING_IMAGE_BYTES

# Decompression-bomb guard. A tiny, highly compressed file (a PNG of one colour, say) can
# declare enormous dimensions and expand to gigabytes once decoded. The width and height
# come from the header, so we refuse anything above this many pixels *before* decoding a
# single pixel. 40 MP covers every real camera photo (about 120 MB as 8-bit RGB) while
# staying well below Pillow's own warning threshold (Image.MAX_IMAGE_PIXELS, ~89 MP),
# which we deliberately leave untouched because other code may rely on it.
MAX_PIXELS = 40_000_000

# Decoded pixels are the API's biggest allocations (3-4 bytes each, and a copy while
# converting), so decoding waits while other requests hold this many pixels: memory stays
# bounded however many large images arrive at once. One image of MAX_PIXELS, or three
# 12-megapixel photos, decode at a time (bench/memory.py: two at once peaked over 1 GB).
DECODE_BUDGET_PIXELS = MAX_PIXELS

MIN_SIDE = 16  # shorter side below this -> ErrorImageDimensions
MAX_SIDE = 10_240  # longer side above this -> ErrorImageDimensions

RESIZED_MIN_SHORT_SIDE = 256  # shorter sides below this are upscaled to it
RESIZED_MAX_SHORT_SIDE = 512  # shorter sides above this are downscaled to it
# An upscale never makes the longer side exceed this (a 16x10240 strip would otherwise
# become 256x163840); when the cap applies the shorter side ends up below 256.
RESIZED_MAX_UPSCALED_LONG_SIDE = 2048
THUMBNAIL_BOX = 200
RESIZED_QUALITY = 90
THUMBNAIL_QUALITY = 85

_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
# Pillow reports multi-picture JPEGs (common from phones) as "MPO"; they are JPEG files.
_FORMAT_ALIASES = {"MPO": "JPEG"}
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_TRANSPOSES = {  # EXIF orientation -> what turns the stored pixels upright (as exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Image.reduce averages exactly (palette indices and 16-bit modes are converted first).
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA"})
_MB = 1024 * 1024

# warnings.catch_warnings() swaps process-global state; serialise our own use of it.
_warnings_lock = threading.Lock()


class ImageRejected(Exception):
    """A bad image; `status` is Custom Vision's ImageCreateStatus value."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"ImageRejected({self.status!r}, {self.message!r})"


@dataclass(frozen=True)
class ProcessedImage:
    """An accepted image: its metadata plus the derived JPEG copies."""

    width: int  # after EXIF orientation is applied
    height: int
    format: str  # "JPEG" | "PNG" | "BMP" | "GIF" | "WEBP"
    content_type: str  # of the original bytes, e.g. "image/jpeg"
    sha256: str  # hex digest of the original bytes (used for duplicate detection)
    resized: bytes  # JPEG, quality 90, RGB, orientation applied
    thumbnail: bytes  # JPEG, quality 85, RGB


def resized_size(width: int, height: int) -> tuple[int, int]:
    """Size of the resized copy: aspect kept, shorter side clamped into [256, 512].

    Shorter sides under 256 are upscaled to 256 (as Custom Vision does) unless that would
    push the longer side past 2048; shorter sides over 512 are downscaled to 512.
    """
    _check_positive(width, height)
    short, long = min(width, height), max(width, height)
    if short < RESIZED_MIN_SHORT_SIDE:
        scale = RESIZED_MIN_SHORT_SIDE / short
        if long * scale > RESIZED_MAX_UPSCALED_LONG_SIDE:
            scale = max(1.0, RESIZED_MAX_UPSCALED_LONG_SIDE / long)
    elif short > RESIZED_MAX_SHORT_SIDE:
        scale = RESIZED_MAX_SHORT_SIDE / short
    else:
        return width, height
    return _scaled(width, height, scale)


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """Size of the thumbnail: fits inside 200x200, aspect kept, never upscaled."""
    _check_positive(width, height)
    if width <= THUMBNAIL_BOX and height <= THUMBNAIL_BOX:
        return width, height
    return _scaled(width, height, min(THUMBNAIL_BOX / width, THUMBNAIL_BOX / height))


@dataclass(frozen=True)
class DecodedImage:
    """Validated pixels: 8-bit RGB with the EXIF orientation applied."""

    rgb: Image.Image  # at full size, or smaller when decoded with a draft size
    width: int  # of the full image, after orientation
    height: int
    format: str  # "JPEG" | "PNG" | "BMP" | "GIF" | "WEBP"
    content_type: str


DraftSize = Callable[[int, int], tuple[int, int]]


def decode_image(data: bytes, max_bytes: int, draft: DraftSize | None = None) -> DecodedImage:
    """Validate and decode ``data`` (the checks of :func:`process_image`).

    ``draft(width, height)`` may name the smallest size the caller needs: a JPEG is then
    decoded at 1/2, 1/4 or 1/8 scale when that still covers it (libjpeg's DCT scaling), and
    any image is box-reduced to it as soon as it is decoded. Decoding holds its share of the
    process-wide pixel budget until the full-size pixels are freed.
    """
    _check_byte_size(len(data), max_bytes)
    with _open(data) as img:
        fmt = _accepted_format(img)
        raw_w, raw_h = img.size
        _check_pixels(raw_w, raw_h)
        _check_dimensions(raw_w, raw_h)
        wanted = draft(raw_w, raw_h) if draft is not None else None
        scale = _dct_scale(raw_w, raw_h, wanted) if fmt == "JPEG" else 1
        # closing(img) exits first: the full-size pixels are freed before the budget is
        # given back (and freed memory trimmed), on errors too.
        with DECODING.reserve(-(-raw_w // scale) * -(-raw_h // scale)), contextlib.closing(img):
            if fmt == "JPEG" and wanted is not None:
                img.draft(None, wanted)
            _load(img, fmt)
            orientation = _orientation(img)
            # Reduce first, in the decoded mode where that is exact (RGBA is reduced
            # premultiplied, so compositing onto white after is the same), then convert and
            # turn only the small copy: the full-size pixels exist once, not three times.
            pixels = img
            if wanted is not None and img.mode in _REDUCIBLE and "transparency" not in img.info:
                pixels = _reduce_to(img, wanted)
            rgb = _to_rgb(pixels)
            del pixels
            if wanted is not None:
                rgb = _reduce_to(rgb, wanted)
            rgb = _transposed(rgb, orientation)
            if rgb is img:
                rgb = img.copy()  # closing the file destroys its pixels
    swapped = orientation in _SWAPPING_ORIENTATIONS
    width, height = (raw_h, raw_w) if swapped else (raw_w, raw_h)
    return DecodedImage(rgb, width, height, fmt, _CONTENT_TYPES[fmt])


def _dct_scale(width: int, height: int, wanted: tuple[int, int] | None) -> int:
    """The 1/scale at which libjpeg decodes for Image.draft(None, wanted)."""
    if wanted is None:
        return 1
    fits = (s for s in (8, 4, 2) if width // s >= wanted[0] and height // s >= wanted[1])
    return next(fits, 1)


def _reduce_to(img: Image.Image, wanted: tuple[int, int]) -> Image.Image:
    """Box-reduce by the largest integer factor that still covers `wanted` (both unrotated),
    so only the pixels the caller needs stay alive."""
    factor = min(img.width // max(wanted[0], 1), img.height // max(wanted[1], 1))
    return img.reduce(factor) if factor >= 2 else img


class PixelBudget:
    """At most `limit` pixels decoded at once across threads; a request over the whole budget
    still runs alone. Large releases hand the freed memory back to the system."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            with self._changed:
                self.used -= pixels
                self._changed.notify_all()
            if pixels >= 4_000_000:
                _return_freed_memory()


def _return_freed_memory() -> None:
    """glibc keeps freed blocks of threads' arenas; malloc_trim gives them back."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: nothing to trim
    _LIBC = None
DECODING = PixelBudget(DECODE_BUDGET_PIXELS)


def _resized_draft(width: int, height: int) -> tuple[int, int]:
    # resized_size is symmetric, so the raw (unrotated) size gives the right target.
    target_w, target_h = resized_size(width, height)
    return target_w * 2, target_h * 2


def derived_copies(decoded: DecodedImage) -> tuple[bytes, bytes]:
    """The resized copy and the thumbnail of a decoded image, as JPEG bytes."""
    width, height = decoded.width, decoded.height
    resized = _resize(decoded.rgb, resized_size(width, height))
    thumbnail = _resize(resized, thumbnail_size(width, height))
    return _encode_jpeg(resized, RESIZED_QUALITY), _encode_jpeg(thumbnail, THUMBNAIL_QUALITY)


def process_image(data: bytes, max_bytes: int = MAX_TRAINING_IMAGE_BYTES) -> ProcessedImage:
    """Validate ``data`` and derive the resized copy and thumbnail.

    Raises :class:`ImageRejected` with status ``ErrorImageSize`` (empty, too many bytes or
    too many pixels), ``ErrorImageFormat`` (unknown, unsupported, truncated or corrupt) or
    ``ErrorImageDimensions`` (a side too short or too long).
    """
    decoded = decode_image(data, max_bytes, _resized_draft)
    resized, thumbnail = derived_copies(decoded)
    return ProcessedImage(
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        content_type=decoded.content_type,
        sha256=hashlib.sha256(data).hexdigest(),
        resized=resized,
        thumbnail=thumbnail,
    )


def _check_positive(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width}x{height}")


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_byte_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageRejected("ErrorImageSize", "The image is empty (0 bytes).")
    if size > max_bytes:
        raise ImageRejected(
            "ErrorImageSize",
            f"The image is {size} bytes ({size / _MB:.2f} MB); the limit is {max_bytes} bytes "
            f"({max_bytes / _MB:.2f} MB).",
        )


def _too_many_pixels(detail: str) -> ImageRejected:
    return ImageRejected(
        "ErrorImageSize",
        f"The image has too many pixels ({detail}); the limit is {MAX_PIXELS:,} pixels.",
    )


def _open(data: bytes) -> Image.Image:
    """Parse the header only (Pillow decodes lazily)."""
    try:
        with _warnings_lock, warnings.catch_warnings():
            # Our own MAX_PIXELS check decides; Pillow's global warning must not leak out.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "ErrorImageFormat",
            f"The image format could not be identified; accepted formats are {_accepted_list()}.",
        ) from exc
    except Exception as exc:  # any parser failure on untrusted bytes is a format error
        raise ImageRejected("ErrorImageFormat", f"The image header is corrupt: {exc}") from exc


def _accepted_list() -> str:
    return ", ".join(_CONTENT_TYPES)


def _accepted_format(img: Image.Image) -> str:
    detected = img.format or "unknown"
    fmt = _FORMAT_ALIASES.get(detected, detected)
    if fmt not in _CONTENT_TYPES:
        raise ImageRejected(
            "ErrorImageFormat",
            f"Unsupported image format {detected}; accepted formats are {_accepted_list()}.",
        )
    return fmt


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(f"{width}x{height} = {width * height:,} pixels")


def _check_dimensions(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise ImageRejected(
            "ErrorImageDimensions",
            f"The image is {width}x{height} pixels; the shorter side must be at least "
            f"{MIN_SIDE} pixels and the longer side at most {MAX_SIDE} pixels.",
        )


def _load(img: Image.Image, fmt: str) -> None:
    """Decode every pixel of the first frame so truncation and corruption surface here."""
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(str(exc)) from exc
    except Exception as exc:  # truncated data, bad chunks, decoder errors...
        raise ImageRejected(
            "ErrorImageFormat", f"The {fmt} image is truncated or corrupt: {exc}"
        ) from exc


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 when there is none, or the EXIF is unreadable)."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # unreadable EXIF: keep the pixels as stored
        return 1
    return orientation if orientation in _TRANSPOSES else 1


def _transposed(img: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSES.get(orientation)
    return img if method is None else img.transpose(method)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB, compositing transparency onto white."""
    if img.mode.startswith("I;16"):
        img = img.convert("I").point(lambda v: v / 257)
    elif img.mode in ("I", "F"):
        img = _stretch_to_8bit(img)
    if img.mode in ("I", "F"):
        img = img.convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _stretch_to_8bit(img: Image.Image) -> Image.Image:
    """Map 32-bit integer or float pixels into 0..255 (linearly, only if out of range)."""
    low, high = img.getextrema()
    assert isinstance(low, (int, float)) and isinstance(high, (int, float))
    if low >= 0 and high <= 255:
        return img
    span = float(high - low) or 1.0
    return img.point(lambda v: (v - low) * 255.0 / span)


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    # reducing_gap: cheap integer reduce first for big downscales, then LANCZOS.
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode_jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()
