"""A progress bar for long operations (`dlq replay` of 100,000 messages, `delayed list`).

Drawn on stderr, only when stderr is a terminal and the job is long: a pipe or a log file gets
the final summary line only, on stdout.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ("PROGRESS_THRESHOLD", "Progress")

#: Below this many messages a browse is quick enough to need no progress bar.
PROGRESS_THRESHOLD = 1000


class Progress:
    """A one-line progress bar on a terminal, redrawn at most ten times a second."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.drawn = False
        self._next = 0.0
        self._on = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self._on or total <= PROGRESS_THRESHOLD:
            return
        now = time.monotonic()
        if now < self._next and done < total:
            return
        self._next = now + 0.1
        filled = 30 * done // total
        bar = "#" * filled + "-" * (30 - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * done // total:3d}% {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * (len(self.label) + 60) + "\r")
            self.stream.flush()
            self.drawn = False
