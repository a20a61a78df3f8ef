"""Getting a lost broker connection back: capped exponential backoff with jitter.

Transports report a lost connection and leave the repair to the runtime (see
`hare.transport.base.Transport`). The worker reconnects for as long as it runs, then
re-declares its queues and consumes again; a publisher reconnects within its publish deadline
and raises `BrokerUnavailable` after it, so `delay()` never hangs and never reports a publish
the broker did not confirm.

A `BrokerTLSError` (a wrong CA, an expired certificate, plain AMQP on a TLS port) is a
configuration error that waiting cannot mend: it is raised at once, unless the caller asks to
wait it out (`retry_tls`) -- a worker that was consuming, whose broker changed underneath it.
"""

from __future__ import annotations

import logging
import random

from hare.clock import Clock
from hare.errors import BrokerTLSError, BrokerUnavailable
from hare.transport.base import Transport

__all__ = ("backoff_delay", "reconnect")

logger = logging.getLogger("hare.reconnect")

#: First and largest pause between connection attempts, in seconds.
FIRST_PAUSE = 0.1
MAX_PAUSE = 10.0


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Seconds to wait before connection attempt `attempt + 1` (0-based), jittered.

    Jitter spreads a fleet's reconnects after a broker restart instead of having every pod
    knock at the same instant.
    """
    ceiling = min(MAX_PAUSE, FIRST_PAUSE * 2.0 ** min(attempt, 30))
    return ceiling * (0.5 + 0.5 * rng.random())


async def reconnect(
    transport: Transport,
    *,
    clock: Clock,
    rng: random.Random,
    deadline: float | None = None,
    what: str = "hare",
    log_every: int = 10,
    retry_tls: bool = False,
) -> None:
    """Connect `transport` again, retrying with backoff; give up at `deadline` (monotonic).

    Each failed attempt is logged with its cause on the first and then every `log_every`-th
    attempt. Raises `BrokerUnavailable` once the deadline passed (never, without one), and a
    `BrokerTLSError` at once unless `retry_tls`.
    """
    started = clock.monotonic()
    attempt = 0
    while True:
        try:
            await transport.connect()
        except BrokerUnavailable as exc:
            if isinstance(exc, BrokerTLSError) and not retry_tls:
                raise
            pause = backoff_delay(attempt, rng)
            if deadline is not None and clock.monotonic() + pause >= deadline:
                waited = clock.monotonic() - started
                raise BrokerUnavailable(
                    f"{what}: no broker connection after {waited:.1f}s: {exc}"
                ) from exc
            if attempt % log_every == 0:
                logger.warning("%s: broker unavailable, retrying (%s)", what, exc)
            attempt += 1
            await clock.sleep(pause)
        else:
            if attempt:
                logger.warning(
                    "%s: reconnected after %.1fs (%d attempts)",
                    what,
                    clock.monotonic() - started,
                    attempt + 1,
                )
            return
