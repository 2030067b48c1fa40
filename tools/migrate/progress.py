"""A one-line progress bar on stderr: images done of the total, duplicates, failures, rate."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24
LOG_EVERY_SECONDS = 5.0  # when stderr is not a terminal: one line this often


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.done = self.copied = self.duplicates = self.failed = 0
        self.started = time.monotonic()
        self._shown = 0.0
        self._tty = self.stream.isatty()

    @property
    def rate(self) -> float:
        """Images copied (or found copied already) per second since the start."""
        elapsed = time.monotonic() - self.started
        return (self.copied + self.duplicates) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        filled = WIDTH * self.done // self.total if self.total else WIDTH
        return (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total}"
            f" images, {self.copied} copied, {self.duplicates} duplicates,"
            f" {self.failed} failed, {self.rate:.1f} images/s"
        )

    def advance(
        self, copied: int = 0, duplicates: int = 0, failed: int = 0, skipped: int = 0
    ) -> None:
        self.copied += copied
        self.duplicates += duplicates
        self.failed += failed
        self.done += copied + duplicates + failed + skipped
        now = time.monotonic()
        if self._tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif now - self._shown >= LOG_EVERY_SECONDS:
            self._shown = now
            print(self.line(), file=self.stream, flush=True)

    def finish(self) -> None:
        print(("\r" if self._tty else "") + self.line(), file=self.stream, flush=True)
