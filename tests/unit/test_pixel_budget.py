"""Decoding holds a share of a process-wide pixel budget, and keeps only the pixels needed."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import ExifTags, Image

from functions import imaging
from functions.imaging import PixelBudget, decode_image


def test_a_reservation_over_what_is_left_waits_for_a_release() -> None:
    budget = PixelBudget(100)
    first_in, second_in, release_first = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with budget.reserve(60):
            first_in.set()
            release_first.wait(10)

    def second() -> None:
        first_in.wait(10)
        with budget.reserve(60):
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_in.wait(10)
    assert not second_in.wait(0.3)  # 60 + 60 > 100: it waits
    assert budget.used == 60
    release_first.set()
    assert second_in.wait(10)
    for thread in threads:
        thread.join(10)
    assert budget.used == 0


def test_a_reservation_larger_than_the_budget_runs_alone() -> None:
    budget = PixelBudget(10)
    with budget.reserve(50):
        assert budget.used == 50
    assert budget.used == 0


def test_a_large_png_is_reduced_to_what_the_caller_needs() -> None:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((2400, 1800)).convert("RGB").save(buffer, "PNG")
    decoded = decode_image(buffer.getvalue(), 10 * 2**20, lambda w, h: (400, 300))
    assert (decoded.width, decoded.height) == (2400, 1800)  # the full image's size
    assert decoded.rgb.size == (400, 300)  # reduced by 6: only what is needed stays
    full = decode_image(buffer.getvalue(), 10 * 2**20)
    assert full.rgb.size == (2400, 1800)


def test_decoding_waits_for_its_share_of_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = PixelBudget(10_000)
    monkeypatch.setattr(imaging, "DECODING", budget)
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (10, 20, 30)).save(buffer, "PNG")
    decoded = threading.Event()

    def decode() -> None:
        decode_image(buffer.getvalue(), 2**20)
        decoded.set()

    with budget.reserve(10_000):  # another request holds the whole budget
        thread = threading.Thread(target=decode)
        thread.start()
        assert not decoded.wait(0.3)
    assert decoded.wait(10)
    thread.join(10)
    assert budget.used == 0


def _png(image: Image.Image, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif.tobytes())
    return buffer.getvalue()


def _noise(size: tuple[int, int], mode: str) -> Image.Image:
    channels = [Image.effect_noise(size, 80).point(lambda v, i=i: (v * (i + 2)) % 256)
                for i in range(len(mode))]  # fmt: skip
    return Image.merge(mode, channels)


def test_a_turned_image_is_reduced_before_it_is_turned_with_the_same_pixels() -> None:
    data = _png(_noise((2400, 1800), "RGB"), orientation=6)  # stored on its side
    small = decode_image(data, 20 * 2**20, lambda w, h: (400, 300))
    full = decode_image(data, 20 * 2**20)
    assert (small.width, small.height) == (full.width, full.height) == (1800, 2400)
    assert small.rgb.size == (300, 400)
    assert small.rgb.tobytes() == full.rgb.reduce(6).tobytes()


def test_transparency_reduced_first_composites_as_if_reduced_after() -> None:
    data = _png(_noise((1200, 900), "RGBA"))  # every pixel a different alpha
    small = decode_image(data, 20 * 2**20, lambda w, h: (200, 150))
    full = decode_image(data, 20 * 2**20)
    assert small.rgb.mode == "RGB" and small.rgb.size == (200, 150)
    expected = np.asarray(full.rgb.reduce(6), dtype=np.int16)
    assert np.abs(np.asarray(small.rgb, dtype=np.int16) - expected).max() <= 2
