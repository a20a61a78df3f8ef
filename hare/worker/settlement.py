"""Settling deliveries: ack, retry through the ladder, send back early, dead-letter, requeue.

Every path that removes a delivery from its queue first makes sure the message lives on
elsewhere (a retry, a re-delayed copy, a dead letter, a counted redelivery) and waits for the
broker's confirm of that publish; only then does it ack. A crash in between duplicates, never
loses.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hare.clock import Clock
from hare.core.deadletter import DeadLetter, dead_letter_envelope
from hare.core.envelope import Delivery, Envelope
from hare.core.headers import ETA_HEADER, REDELIVERIES_HEADER
from hare.core.message import Message
from hare.core.outcome import Failed, Outcome, Rejected, RetryRequested
from hare.core.retry import Ack, DeadLetterAs, Requeue, RetryAt, RetryIn
from hare.errors import BrokerNotReady, DelayTooLong, PublishNacked, PublishTimeout
from hare.middleware import DeadLettered
from hare.publisher import Publisher
from hare.task import Task
from hare.worker.patience import until_done
from hare.worker.verdict import Verdict

__all__ = ("Settlement",)

logger = logging.getLogger("hare.worker")


class Settlement:
    """Settles the deliveries of one worker connection."""

    def __init__(self, publisher: Publisher, clock: Clock, delivery_limit: int) -> None:
        self._publisher = publisher
        self._transport = publisher.transport
        self._clock = clock
        self._delivery_limit = delivery_limit
        self._rng = random.Random()

    async def ack(self, delivery: Delivery) -> None:
        await self._transport.ack(delivery)

    async def settle(
        self,
        delivery: Delivery,
        task: Task[Any, Any],
        message: Message,
        verdict: Verdict,
        *,
        before_ack: Callable[[], None] | None = None,
    ) -> None:
        """Settle a delivery whose task ran, by its verdict's decision.

        `before_ack` is called once whatever the settlement publishes is confirmed, right
        before the delivery is acked: from there on, a copy of the delivery needs only an ack.
        """
        outcome, decision = verdict.outcome, verdict.decision
        if isinstance(decision, Ack):
            if before_ack is not None:
                before_ack()
            await self._transport.ack(delivery)
            return
        if isinstance(decision, RetryIn | RetryAt):
            await self._retry(delivery, task, message, outcome, decision, before_ack)
            return
        if isinstance(decision, Requeue):
            # As it is: the broker delivers it again, marked redelivered, and counts it.
            await self._transport.reject(delivery, requeue=True)
            logger.info(
                "task %s[%s] rejected with requeue: back to its queue", task.name, message.id
            )
            return
        dead = _dead_letter_for(decision, outcome, attempts=message.retries + 1)
        # (How the task ended is logged where it ran, with its traceback: `worker.tracelog`.)
        await self.dead_letter(delivery, dead, before_ack=before_ack, level=logging.INFO)

    async def _retry(
        self,
        delivery: Delivery,
        task: Task[Any, Any],
        message: Message,
        outcome: Outcome,
        decision: RetryIn | RetryAt,
        before_ack: Callable[[], None] | None,
    ) -> None:
        """Publish the next attempt through the ladder (confirmed), then ack this one.

        Celery's semantics: same task id, `retries + 1`, `parent_id` = the task's own id.
        """
        if isinstance(decision, RetryIn):
            eta = datetime.fromtimestamp(self._clock.time() + decision.seconds, UTC)
        else:
            eta = decision.eta
        headers = {k: v for k, v in message.headers.items() if k != ETA_HEADER}
        again = replace(
            message, retries=message.retries + 1, eta=eta, parent_id=message.id, headers=headers
        )
        queue = delivery.queue
        if isinstance(outcome, RetryRequested):
            if outcome.args is not None:
                again = replace(again, args=outcome.args, argsrepr=None)
            if outcome.kwargs is not None:
                again = replace(again, kwargs=outcome.kwargs, kwargsrepr=None)
            if outcome.expires is not None:
                expires = outcome.expires
                if not isinstance(expires, datetime):
                    expires = datetime.fromtimestamp(self._clock.time() + expires, UTC)
                again = replace(again, expires=expires)
            queue = outcome.queue or queue
        try:
            await self._publisher.send(queue, again, via_ladder=True)
        except DelayTooLong as exc:
            dead = _dead_letter_for(DeadLetterAs("retry-too-far"), outcome, message.retries + 1)
            await self.dead_letter(delivery, replace(dead, detail=str(exc)), before_ack=before_ack)
            return
        if before_ack is not None:
            before_ack()
        await self._transport.ack(delivery)
        # (The retry is logged where the task ran, saying which and when: `worker.tracelog`.)
        logger.debug(
            "task %s[%s] retry %d sent through the delay ladder, due at %s",
            task.name,
            message.id,
            again.retries,
            eta.isoformat(),
        )

    async def redelay(self, delivery: Delivery, message: Message, early: float) -> None:
        """Send a message that arrived early back through the ladder (confirmed), then ack."""
        try:
            await self._publisher.send(delivery.queue, message, via_ladder=True)
        except DelayTooLong as exc:
            await self.dead_letter(delivery, DeadLetter(reason="bad-eta", detail=str(exc)))
            return
        await self._transport.ack(delivery)
        logger.info(
            "task %s[%s] arrived %.1fs early: back through the delay ladder",
            message.task,
            message.id,
            early,
        )

    async def count_redelivery(self, delivery: Delivery) -> None:
        """A classic-queue delivery came back unsettled: count it, or give up on it.

        A message whose worker died while running it (segfault, OOM kill) comes back with
        `redelivered` set and would otherwise crash every worker that takes it, forever. It is
        republished to the tail with `hare-redeliveries` + 1 (confirmed), then acked; once it
        ran `delivery_limit` times it is dead-lettered instead.
        """
        headers = delivery.properties.headers
        count = headers.get(REDELIVERIES_HEADER, 0)
        count = (count if isinstance(count, int) else 0) + 1
        limit = self._delivery_limit
        if count >= limit:
            detail = (
                f"its worker went away while running it {count} times (delivery_limit "
                f"{limit}): does it kill the process that runs it?"
            )
            dead = DeadLetter(reason="delivery-limit", detail=detail, attempts=count)
            await self.dead_letter(delivery, dead)
            return
        again = replace(delivery.properties, headers={**headers, REDELIVERIES_HEADER: count})
        await self._transport.publish(
            Envelope(exchange="", routing_key=delivery.queue, body=delivery.body, properties=again)
        )
        await self._transport.ack(delivery)
        logger.warning(
            "message %s[%s] redelivered (%d of %d): requeued at the tail",
            headers.get("task", "?"),
            headers.get("id", "?"),
            count,
            limit,
        )

    async def dead_letter(
        self,
        delivery: Delivery,
        dead: DeadLetter,
        *,
        before_ack: Callable[[], None] | None = None,
        level: int = logging.ERROR,
    ) -> None:
        """Publish the delivery to `<queue>.dead` with `dead`'s reason, confirmed, then ack;
        logged at `level` (INFO where the task's own line said how it failed).

        A dead letter the broker refuses (basic.nack: the dead-letter queue's node is down) or
        does not confirm in time is published again after a backoff pause, for as long as the
        connection lasts: the delivery stays unsettled here meanwhile, holding its prefetch
        slot, and nothing is lost. (Left unsettled on a live channel it held the slot until
        the connection closed.) A lost connection raises: the broker delivers it again."""
        envelope = dead_letter_envelope(delivery, dead, now=self._clock.time())
        await until_done(
            f"dead-lettering into {envelope.routing_key!r}",
            lambda: self._transport.publish(envelope),
            retry_on=(PublishNacked, PublishTimeout, BrokerNotReady),
            clock=self._clock,
            rng=self._rng,
            going=lambda: True,
        )
        if before_ack is not None:
            before_ack()
        await self._transport.ack(delivery)
        headers = delivery.properties.headers
        if self._publisher.middleware.wants("on_dead_letter"):
            self._publisher.middleware.call("on_dead_letter", _dead_lettered(delivery, dead))
        logger.log(
            level,
            "message %s[%s] from %s dead-lettered: %s (%s)",
            headers.get("task", "?"),
            headers.get("id", "?"),
            delivery.queue,
            dead.reason,
            dead.detail,
        )

    async def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back to its queue (drain); closing the channel would do it too."""
        try:
            await asyncio.shield(self._transport.reject(delivery, requeue=True))
        except Exception:
            logger.exception("could not requeue a delivery; it returns when the channel closes")


def _dead_lettered(delivery: Delivery, dead: DeadLetter) -> DeadLettered:
    headers = delivery.properties.headers
    return DeadLettered(
        queue=delivery.queue,
        task=str(headers.get("task", "?")),
        id=str(headers.get("id", "?")),
        reason=dead.reason,
        detail=dead.detail,
        attempts=dead.attempts or None,
    )


def _dead_letter_for(decision: DeadLetterAs, outcome: Outcome, attempts: int) -> DeadLetter:
    if isinstance(outcome, Rejected):
        return DeadLetter(reason=decision.reason, detail=outcome.reason, attempts=attempts)
    exc = outcome.exception if isinstance(outcome, Failed | RetryRequested) else None
    trace = outcome.traceback if isinstance(outcome, Failed | RetryRequested) else None
    return DeadLetter(
        reason=decision.reason,
        detail=str(exc) if exc is not None else "",
        exception_type=_qualname(exc) if exc is not None else None,
        traceback=trace,
        attempts=attempts,
    )


def _qualname(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
