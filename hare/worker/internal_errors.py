"""Deliveries whose handling failed inside hare (a bug, not the task): settled all the same.

The first failure of a run requeues its delivery, in case the fault was passing; a second for
the same run dead-letters it with reason `internal-error` and the traceback, where an operator
sees it. No delivery is left unsettled.
"""

from __future__ import annotations

import logging
import traceback

from hare.clock import Clock
from hare.core.deadletter import DeadLetter
from hare.core.envelope import Delivery
from hare.errors import BrokerError
from hare.worker.runs import RunKey, remember
from hare.worker.settlement import Settlement

__all__ = ("InternalErrors",)

logger = logging.getLogger("hare.worker")

#: How long to wait before handing back a message that not even a dead letter could take.
_PAUSE = 1.0


class InternalErrors:
    """Settles the deliveries of one worker whose handling failed inside hare."""

    def __init__(self, settlement: Settlement, clock: Clock) -> None:
        self._settlement = settlement
        self._clock = clock
        # Run keys whose handling failed inside hare once (then requeued).
        self._failed_once: dict[RunKey, None] = {}

    async def settle(self, delivery: Delivery, key: RunKey | None, exc: Exception) -> None:
        """Requeue the delivery the first time its run failed here, else dead-letter it."""
        headers = delivery.properties.headers
        name, task_id = headers.get("task", "?"), headers.get("id", "?")
        again = key is None or key in self._failed_once
        logger.error(
            "task %s[%s] from %s: internal error in hare while handling it; %s",
            name,
            task_id,
            delivery.queue,
            "dead-lettered" if again else "requeued once",
            exc_info=exc,
        )
        try:
            if not again:
                assert key is not None
                remember(self._failed_once, key, None)
                await self._settlement.requeue(delivery)
                return
            if key is not None:
                del self._failed_once[key]
            dead = DeadLetter(
                reason="internal-error",
                detail=f"{type(exc).__name__}: {exc}",
                exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
            await self._settlement.dead_letter(delivery, dead)
        except BrokerError:
            raise
        except Exception:
            # Not even a dead letter could be sent: hand the message back, after a pause so
            # that a fault that persists does not become a hot loop.
            logger.exception("task %s[%s]: could not dead-letter it; requeued", name, task_id)
            await self._clock.sleep(_PAUSE)
            await self._settlement.requeue(delivery)
