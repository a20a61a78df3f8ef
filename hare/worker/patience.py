"""Doing a broker operation again until it works: for what a worker must get done to run.

Subscribing (declaring the queues, consuming them, reading the revocation stream) can fail for
reasons that pass: a cluster node without a running replica of a stream another node just
declared, a quorum queue electing its leader (no reply in time). A worker that stopped there
would leave its queues unserved; `until_done` retries such an operation with the reconnect
backoff, logging each failure with its cause, for as long as `going()` says the worker still
wants it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

from hare.clock import Clock
from hare.transport.reconnect import backoff_delay

__all__ = ("until_done",)

logger = logging.getLogger("hare.worker")


async def until_done(
    what: str,
    operation: Callable[[], Awaitable[None]],
    *,
    retry_on: tuple[type[BaseException], ...],
    clock: Clock,
    rng: random.Random,
    going: Callable[[], bool],
) -> bool:
    """Run `operation` until it succeeds (True) or `going()` turns false (False); an error
    in `retry_on` is logged and retried after a backoff pause, any other one is raised."""
    attempt = 0
    while going():
        try:
            await operation()
        except retry_on as exc:
            delay = backoff_delay(attempt, rng)
            logger.warning("%s: not done yet (%s); again in %.1fs", what, exc, delay)
            attempt += 1
            await clock.sleep(delay)
        else:
            return True
    return False
