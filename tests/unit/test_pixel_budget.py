"""Decoding holds a share of a process-wide pixel budget, and keeps only the pixels needed."""

from __future__ import annotations

import io
import threading

from PIL import Image

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
