"""Calls spaced to a rate limit, and retried when the service answers 429 (or 503)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 503})
MAX_BACKOFF_SECONDS = 60.0


def status_and_headers(error: BaseException) -> tuple[int | None, Mapping[str, str]]:
    """The HTTP status and headers an SDK (msrest) or httpx error carries, if any."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    return (status if isinstance(status, int) else None), headers


def retry_after(headers: Mapping[str, str], attempt: int) -> float:
    """Seconds to wait: the Retry-After header (seconds) if given, else an exponential
    backoff with jitter (0.5, 1, 2 ... s, at most MAX_BACKOFF_SECONDS)."""
    value = str(headers.get("Retry-After") or headers.get("retry-after") or "")
    if value:
        try:
            return min(MAX_BACKOFF_SECONDS, max(0.0, float(value)))
        except ValueError:
            pass  # an HTTP date: fall back to the backoff
    return min(MAX_BACKOFF_SECONDS, 0.5 * 2.0**attempt * (0.75 + 0.5 * random.random()))


class Pacer:
    """At most `rate` calls a second through `call` (0: no limit), each retried up to
    `retries` times when answered 429 or 503; `throttled` counts those answers."""

    def __init__(
        self,
        rate: float,
        retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.retries, self.sleep, self.clock = retries, sleep, clock
        self.calls = 0
        self.throttled = 0
        self._next = 0.0
        self._lock = threading.Lock()

    def _wait_turn(self) -> None:
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
            self.calls += 1
        if start > now:
            self.sleep(start - now)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(self.retries + 1):
            self._wait_turn()
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                status, headers = status_and_headers(error)
                if status not in RETRY_STATUSES or attempt == self.retries:
                    raise
                with self._lock:
                    self.throttled += 1
                self.sleep(retry_after(headers, attempt))
        raise AssertionError("unreachable")
