"""The migration's pacing: calls spaced to the rate limit, 429 and 503 retried after
Retry-After or a growing backoff, other errors raised at once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tools.migrate.pacing import MAX_BACKOFF_SECONDS, Pacer, retry_after


class Answered(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = SimpleNamespace(status_code=status, headers=headers or {})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_calls_are_spaced_to_the_rate() -> None:
    clock = Clock()
    pacer = Pacer(rate=10, sleep=clock.sleep, clock=clock)
    for _ in range(5):
        pacer.call(lambda: None)
    assert clock.now == pytest.approx(0.4)  # the first at once, then one every 0.1 s
    assert pacer.calls == 5
    unlimited = Pacer(rate=0, sleep=clock.sleep, clock=clock)
    before = clock.now
    for _ in range(5):
        unlimited.call(lambda: None)
    assert clock.now == before


def test_throttled_calls_wait_and_retry() -> None:
    clock = Clock()
    pacer = Pacer(rate=0, sleep=clock.sleep, clock=clock)
    answers: list[Exception | str] = [Answered(429, {"Retry-After": "3"}), Answered(503), "ok"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert pacer.call(call) == "ok"
    assert pacer.throttled == 2
    assert clock.slept[0] == 3.0 and 0.75 <= clock.slept[1] <= 1.25


def test_other_errors_and_too_many_retries_raise() -> None:
    clock = Clock()
    pacer = Pacer(rate=0, retries=2, sleep=clock.sleep, clock=clock)
    calls = {"n": 0}

    def refused() -> None:
        calls["n"] += 1
        raise Answered(400)

    with pytest.raises(Answered):
        pacer.call(refused)
    assert calls["n"] == 1

    def throttled() -> None:
        calls["n"] += 1
        raise Answered(429)

    calls["n"] = 0
    with pytest.raises(Answered):
        pacer.call(throttled)
    assert calls["n"] == 3 and pacer.throttled == 2


def test_backoff_grows_and_is_capped() -> None:
    waits = [retry_after({}, attempt) for attempt in range(12)]
    assert waits[0] < waits[3] < waits[6]
    assert max(waits) <= MAX_BACKOFF_SECONDS
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0) <= 0.625
    assert retry_after({"Retry-After": "1000"}, 0) == MAX_BACKOFF_SECONDS
