"""Celery's events, consumed into the recent-tasks ring while the dashboard runs.

Workers started with `-E` publish every task event on the `celeryev` topic exchange (routing
key `task.succeeded`, a JSON object; Celery's format, which hare's workers send too). The
dashboard listens as Celery's own monitors do (`celery events`, Flower): a queue of its own,
`celeryev.<uuid>`, exclusive to the dashboard's connection (deleted with it; RabbitMQ 4.3 denies
transient queues that are not exclusive), whose messages expire after `EVENT_TTL` seconds, so
a dashboard that stops leaves nothing that grows behind. Without `-E` nothing comes, and the
tasks page says so. A lost connection is retried every `retry` seconds.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from hare.app import Hare
from hare.core.envelope import Delivery
from hare.core.topology import Binding, Exchange, Queue
from hare.dashboard.ring import TaskRing
from hare.errors import HareError

__all__ = ("EVENT_EXCHANGE", "EventFeed")

logger = logging.getLogger("hare.dashboard")

#: Celery's event exchange (`event_exchange`), as kombu declares it: topic, durable.
EVENT_EXCHANGE = Exchange(name="celeryev", type="topic")
#: Seconds an event waits in the queue, and the queue outlives the dashboard (Celery's
#: `event_queue_ttl` and `event_queue_expires`).
EVENT_TTL, EXPIRES = 5.0, 60.0


class EventFeed:
    """Consume `task-*` and `worker-*` events into `ring` until cancelled."""

    def __init__(self, app: Hare, ring: TaskRing, *, retry: float = 2.0) -> None:
        self.app, self.ring, self.retry = app, ring, retry
        self.queue = Queue(
            name=f"celeryev.{uuid.uuid4()}",
            durable=False,
            exclusive=True,  # never transient and shared: RabbitMQ 4.3 denies those by default
            auto_delete=True,
            arguments={"x-message-ttl": int(EVENT_TTL * 1000), "x-expires": int(EXPIRES * 1000)},
        )
        self.listening = False
        self.problem: str | None = None  # why it does not listen, for the tasks page

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except HareError as exc:
                self.problem = f"cannot consume events: {exc}"
                logger.warning("dashboard: %s; again in %.0f s", self.problem, self.retry)
            await self.app.clock.sleep(self.retry)

    async def _listen(self) -> None:
        transport = self.app.make_transport()
        await transport.connect()
        try:
            await transport.declare_exchange(EVENT_EXCHANGE)
            await transport.declare_queue(self.queue)
            for key in ("task.#", "worker.#"):
                await transport.bind(
                    Binding(
                        exchange=EVENT_EXCHANGE.name, destination=self.queue.name, routing_key=key
                    )
                )

            async def on_event(delivery: Delivery) -> None:
                self.take(delivery.body)
                await transport.ack(delivery)

            consumer = await transport.consume(self.queue.name, on_event, prefetch=200)
            self.listening, self.problem = True, None
            try:
                while consumer.is_active and not transport.connection_lost.is_set():
                    await self.app.clock.sleep(0.5)
            finally:
                await consumer.close()
        finally:
            self.listening = False
            await transport.close()

    def take(self, body: bytes) -> None:
        """One event's body (or a list of them: Celery's batched events) into the ring."""
        try:
            decoded: Any = json.loads(body)
        except ValueError:
            logger.debug("dashboard: an event that is not JSON was skipped")
            return
        for event in decoded if isinstance(decoded, list) else [decoded]:
            if isinstance(event, dict):
                self.ring.apply(event)
