"""Checks of user-given text and enum values, refusing with Custom Vision's error codes."""

from __future__ import annotations

import enum
from typing import TypeVar

from functions.domain.errors import BadRequest

E = TypeVar("E", bound=enum.StrEnum)


def required_text(value: str | None, max_length: int, code: str, label: str) -> str:
    """Stripped, non-empty text of at most `max_length` characters."""
    text = (value or "").strip()
    if not text or len(text) > max_length:
        raise BadRequest(code, f"{label} is required, at most {max_length} characters.")
    return text


def optional_text(value: str | None, max_length: int, code: str, label: str) -> str:
    if value and len(value) > max_length:
        raise BadRequest(code, f"{label} is at most {max_length} characters.")
    return value or ""


def choice(kind: type[E], value: str | None, default: E, code: str, label: str) -> E:
    """The enum member named by `value` (ignoring case); `default` when no value is given."""
    if value is None or value == "":
        return default
    for option in kind:
        if option.value.lower() == value.lower():
            return option
    allowed = " or ".join(o.value for o in kind)
    raise BadRequest(code, f"Unknown {label} '{value}'; use {allowed}.")
