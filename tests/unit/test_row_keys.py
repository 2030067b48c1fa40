"""Row keys made from user-given names hold none of the characters Table keys forbid."""

from __future__ import annotations

import re

import pytest

from functions.storage.tables import ConcurrentChange, Stale, name_key, retrying

FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("name", ["C#", "cats/dogs", "what?", "a\\b", "tab\t", "\x07", "名" * 256])
def test_name_keys_are_safe_and_short(name: str) -> None:
    key = name_key("nm|", name)
    assert not FORBIDDEN.search(key)
    assert len(key) == len("nm|") + 64


def test_name_keys_ignore_case_surrounding_space_and_unicode_normal_form() -> None:
    assert name_key("nm|", "Straße") == name_key("nm|", "STRASSE")  # case folding, not lower()
    assert name_key("nm|", "  Café ") == name_key("nm|", "cafe\u0301")  # NFC vs NFD
    assert name_key("nm|", "cat") != name_key("nm|", "cats")


def test_retrying_reruns_stale_attempts_then_gives_up() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Stale()
        return "done"

    assert retrying(flaky, "x") == "done" and len(calls) == 3

    def always_stale() -> None:
        raise Stale()

    with pytest.raises(ConcurrentChange) as error:
        retrying(always_stale, "Image 1")
    assert error.value.http_status == 503
