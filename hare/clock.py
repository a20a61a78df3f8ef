"""Time as something the runtime is given, so tests can drive it without sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ("Clock", "SystemClock")


class Clock(Protocol):
    """Where the runtime reads the time and waits."""

    def time(self) -> float:
        """Seconds since the epoch (wall clock): for ETAs and expiry across processes."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
