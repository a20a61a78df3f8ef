"""Celery's per-task `rate_limit`: a token bucket per task and worker process.

`"10/s"`, `"100/m"`, `"1000/h"` or a number (per second); `0` or `None` means no limit. As in
Celery the bucket holds one token, so starts are spread evenly: at most one start every
`1 / rate` seconds per worker process, the first at once.

Where Celery holds a rate-limited message back before it reaches the pool, hare_compat delays
the start of the task inside the worker's slot: an async task awaits its turn on the loop, a
sync task waits in its thread or its prefork child. The wait counts towards the task's time
limits. The bucket lives in memory shared with the prefork children the worker forks, so the
limit is the worker's, as in Celery, not each child's (children started with `spawn` or
`forkserver` import the app afresh and each has a bucket of its own).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

from hare.clock import Clock
from hare.errors import ConfigurationError

__all__ = ("RateLimiter", "TokenBucket", "parse_rate")

_PER_SECOND = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: str | float | None) -> float:
    """Tasks per second for a Celery rate (`"10/m"` is 1/6); 0 means no limit.

    >>> parse_rate("100/m") == 100 / 60
    True
    """
    if value is None or value == "" or value == 0:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigurationError(f"rate_limit must be like '10/m' or a number, not {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"rate_limit must not be negative, not {value!r}")
        return float(value)
    ops, _, unit = value.strip().partition("/")
    try:
        count = float(ops)
    except ValueError:
        count = -1.0
    if count < 0 or (unit or "s") not in _PER_SECOND:
        raise ConfigurationError(
            f"bad rate_limit {value!r}: use '<number>/s', '<number>/m' or '<number>/h'"
        )
    return count / _PER_SECOND[unit or "s"]


class TokenBucket:
    """A bucket filled at `fill_rate` tokens a second, holding at most `capacity`.

    `reserve()` takes a token and says how long to wait for it; tokens may go negative, so
    concurrent callers queue up one `1 / fill_rate` apart instead of all retrying at once.
    Thread-safe; the clock is an argument.
    """

    def __init__(
        self, fill_rate: float, capacity: float = 1.0, *, monotonic: Callable[[], float]
    ) -> None:
        if fill_rate <= 0:
            raise ConfigurationError("a token bucket needs a positive fill rate")
        self.fill_rate = fill_rate
        self.capacity = capacity
        self._monotonic = monotonic
        # Tokens and when they were counted, shared with forked children (see above).
        self._state = multiprocessing.RawArray("d", [capacity, monotonic()])
        self._lock = multiprocessing.Lock()

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it (0.0: go now)."""
        state = self._state
        with self._lock:
            now = self._monotonic()
            elapsed = max(0.0, now - state[1])
            tokens: float = min(self.capacity, state[0] + elapsed * self.fill_rate) - 1.0
            state[0], state[1] = tokens, now
        if tokens >= 0:
            return 0.0
        return -tokens / self.fill_rate


class RateLimiter:
    """A task's rate limit in one worker process: wait for the turn to start.

    `clock` is the app's (its `monotonic` and `sleep` for async tasks); `sleep` is how a
    sync task waits in its thread (`time.sleep` unless a test injects another).
    """

    def __init__(
        self,
        rate: str | float,
        clock: Clock,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        per_second = parse_rate(rate)
        if per_second <= 0:
            raise ConfigurationError(f"rate_limit {rate!r} does not limit anything")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self.bucket = TokenBucket(per_second, monotonic=clock.monotonic)

    async def wait_async(self) -> float:
        """Await this call's turn on the loop; the seconds waited."""
        delay = self.bucket.reserve()
        if delay > 0:
            await self._clock.sleep(delay)
        return delay

    def wait_sync(self) -> float:
        """Block this thread until this call's turn; the seconds waited."""
        delay = self.bucket.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay
