"""Identifiers: GUIDs for everything, time-ordered for images so keys sort oldest first."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

from functions.domain.errors import BadRequest


def new_id() -> str:
    return str(uuid.uuid4())


_last_ordered = 0
_ordered_lock = threading.Lock()


def new_time_ordered_id(now_ms: int | None = None) -> str:
    """A UUIDv7: 48 bits of Unix milliseconds then random bits, so ids sort by creation.

    Ids made by one process are strictly increasing, also within one millisecond.
    """
    global _last_ordered
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big") >> 8  # leave room to count upwards
    value = (ms & ((1 << 48) - 1)) << 80 | rand
    if now_ms is None:  # ids for an explicit time stay out of the process's sequence
        with _ordered_lock:
            if value <= _last_ordered:
                value = _last_ordered + 1
            _last_ordered = value
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def new_region_id(image_id: str) -> str:
    """A region's GUID: the top 64 bits of its image's id, then 62 random bits (RFC 4122
    variant), so the image holding a region is found from the region id alone."""
    top = uuid.UUID(image_id).int >> 64 << 64
    low = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1) | (0x2 << 62)
    return str(uuid.UUID(int=top | low))


def region_image_prefix(region_id: str) -> str:
    """The start shared by the region's image id (and by few others: images made in the same
    millisecond may share it)."""
    return region_id[:18]


def parse_id(value: str, what: str = "id") -> str:
    """Normalise a GUID from a request, or refuse it with Custom Vision's code."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise BadRequest("BadRequestInvalidIds", f"{what} '{value}' is not a valid GUID.") from None


def parse_id_list(raw: str | None, what: str, max_items: int) -> list[str]:
    """A comma-separated list of GUIDs (how the SDK sends lists), de-duplicated in order."""
    if raw is None or raw.strip() == "":
        return []
    ids = list(dict.fromkeys(parse_id(part, what) for part in raw.split(",") if part.strip()))
    if len(ids) > max_items:
        raise BadRequest(
            "BadRequestExceededBatchSize", f"At most {max_items} {what}s may be given at once."
        )
    return ids


def id_time(time_ordered_id: str) -> datetime:
    """When a UUIDv7 was made (its 48-bit millisecond timestamp), in UTC."""
    ms = uuid.UUID(time_ordered_id).int >> 80
    return datetime.fromtimestamp(ms / 1000, UTC)


def time_prefix(moment: datetime) -> str:
    """The leading characters shared by every UUIDv7 made in `moment`'s millisecond, so that
    string ranges over time-ordered ids select a span of time."""
    ms = int(moment.timestamp() * 1000)
    digits = f"{ms & ((1 << 48) - 1):012x}"
    return f"{digits[:8]}-{digits[8:]}-"


_COMPLEMENT = str.maketrans("0123456789abcdef", "fedcba9876543210")


def inverted(key: str) -> str:
    """Each hex digit d replaced by f - d: ids (and their prefixes) sort in reverse order."""
    return key.translate(_COMPLEMENT)
