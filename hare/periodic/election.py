"""Which worker runs the app's schedules: the one the broker delivers the tick queue to.

Every worker that keeps schedules consumes the tick queue, which is `x-single-active-consumer`:
the broker delivers to one consumer only, and when that consumer's channel closes (its process
killed, its node lost) it hands everything the consumer held to the next one. AMQP 0-9-1 never
tells a consumer that it became the active one, so *tokens* circulate in the queue:

* every subscription publishes one token; the active consumer keeps exactly one unacked, and
  holding a token received on its *current* subscription is what makes a worker the leader.
  It acks every other token. When the leader dies its token goes back to the queue and on to
  the next consumer, which thereby leads;
* each watchdog round the leader publishes a fresh token and, once it arrives, acks the one it
  held (RabbitMQ's `consumer_timeout`, 30 min by default, closes a channel that holds a delivery
  longer). A fresh token that has not come back by the next round went to another consumer:
  the leader steps down (closes its channel and subscribes again, at the back of the line);
* a worker that does not lead publishes a token each round too, so the active consumer leads
  within a round even if a token was ever lost (a purge);
* a token from a higher deploy generation makes the leader step down, once per token: the token
  goes back with the channel and on to the next consumer, so the newest deploy ends up leading;
* ticks and releases that reach a consumer holding no token yet wait, unsettled, for one;
* leadership ends at once with its subscription: a lost connection, a closed channel, a
  step-down, the worker stopping. `epoch` numbers the subscriptions, and the scheduler checks
  `leads(epoch)` just before each publish, so nothing is offered under a lead that ended.

In a network partition a leader cut off from the queue's majority may not learn at once that
another worker leads: it steps down at its next round, and meanwhile cannot publish to the
quorum slots (they need that majority).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hare.core.envelope import Delivery
from hare.errors import BrokerError, HareError, MessageError
from hare.periodic.ticks import Token, kind_of, tick_queue_name, token_envelope, token_from
from hare.transport.base import Consumer, Transport

__all__ = ("Election", "NotLeading")

logger = logging.getLogger("hare.periodic")

#: The tick queue consumer's prefetch: the token held, ticks of schedules firing together,
#: tokens of other workers on their way to being acked.
PREFETCH = 16
#: How long a stopping worker waits for the ticks it is handling before handing over.
STOP_GRACE = 10.0

DeliveryHandler = Callable[[Delivery, int], Awaitable[None]]


class NotLeading(HareError):
    """This worker stopped leading the schedules while acting for them; the next leader
    takes over what it was doing."""


class Election:
    """This worker's claim to run the schedules of `app`, through the tick queue."""

    def __init__(
        self,
        app: str,
        transport: Transport,
        *,
        generation: int,
        on_delivery: DeliveryHandler,
        on_lead: Callable[[int], None],
    ) -> None:
        self.app = app
        #: This process's name in its tokens.
        self.pod = uuid.uuid4().hex[:12]
        self.generation = generation
        self._transport = transport
        self._on_delivery = on_delivery
        self._on_lead = on_lead
        self._epoch = 0
        self._consumer: Consumer | None = None
        self._leading: int | None = None  # the epoch this worker leads in
        self._held: Delivery | None = None  # the token that makes it lead
        self._fresh: int | None = None  # the serial of the fresh token not back yet
        self._waiting: list[Delivery] = []  # ticks that came before a token
        self._serials = itertools.count(1)
        self._stepped_for: set[tuple[str, int]] = set()
        self._stopping = False  # no more ticks handled: handing over
        self._stopped = False  # by the worker: no step-down consumes again
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._watch: asyncio.Future[None] | None = None
        self._subscribing = asyncio.Lock()

    # -- the lead --------------------------------------------------------------------------

    def leads(self, epoch: int) -> bool:
        """Whether this worker leads now, in the subscription numbered `epoch`."""
        consumer = self._consumer
        return (
            self._leading == epoch == self._epoch
            and not self._stopping
            and consumer is not None
            and consumer.is_active
            and self._transport.is_connected
            and not self._transport.connection_lost.is_set()
        )

    def check(self, epoch: int) -> None:
        """Raise `NotLeading` unless this worker leads in `epoch`."""
        if not self.leads(epoch):
            raise NotLeading(f"this worker no longer leads the schedules of {self.app!r}")

    @property
    def epoch(self) -> int | None:
        """The subscription this worker leads in, or `None`."""
        return self._epoch if self.leads(self._epoch) else None

    # -- subscribing -------------------------------------------------------------------------

    async def subscribe(self) -> Consumer:
        """Consume the tick queue (declared by the caller) and put a token in.

        One at a time (a step-down and the worker's reconnect may ask together): a consumer
        left behind would be the active one, holding the schedules with nobody reading it.
        """
        async with self._subscribing:
            self._stopped = False
            return await self._subscribe()

    async def _resubscribe(self) -> None:
        """Step down: consume again, at the back of the line (not once stopped)."""
        async with self._subscribing:
            if not self._stopped:
                await self._subscribe()

    async def _subscribe(self) -> Consumer:
        old = self._end_term()
        if old is not None:
            await old.close()  # what it held, a token among it, goes to the next consumer
        self._stopping = False
        epoch = self._epoch
        handler = functools.partial(self._on_message, epoch)
        self._consumer = await self._transport.consume(
            tick_queue_name(self.app), handler, prefetch=PREFETCH
        )
        if self._watch is not None:
            self._watch.cancel()
        self._watch = asyncio.ensure_future(self._end_on_loss(epoch))
        await self._publish_token(next(self._serials))
        return _Subscription(self)

    async def stop(self) -> None:
        """Hand over: finish the ticks being handled (briefly), then close the consumer."""
        self._stopping = self._stopped = True
        try:
            async with asyncio.timeout(STOP_GRACE):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("stopping with ticks still being handled; the next leader redoes them")
        async with self._subscribing:
            old = self._end_term()
            if self._watch is not None:
                self._watch.cancel()
            if old is not None:
                await old.close()

    def _end_term(self) -> Consumer | None:
        """End the current subscription's lead (no I/O); the consumer to close."""
        if self._leading == self._epoch:
            logger.info("this worker no longer leads the schedules of %s", self.app)
        self._epoch += 1
        self._leading = self._held = self._fresh = None
        self._waiting = []
        consumer, self._consumer = self._consumer, None
        return consumer

    async def _end_on_loss(self, epoch: int) -> None:
        await self._transport.connection_lost.wait()
        if epoch == self._epoch:
            self._end_term()  # the channel went with the connection: nothing to close

    @property
    def subscribed(self) -> bool:
        return self._consumer is not None and self._consumer.is_active

    # -- each watchdog round -----------------------------------------------------------------

    async def round(self) -> int | None:
        """Keep the lead, or the claim to it, alive; return the epoch this worker leads in."""
        transport = self._transport
        if self._stopped or not transport.is_connected or transport.connection_lost.is_set():
            return None  # the worker reconnects and subscribes again
        if not self.subscribed:
            logger.warning("the tick queue's consumer of %s ended; consuming again", self.app)
            await self._resubscribe()
            return None
        epoch = self._epoch
        if self._leading != epoch:
            await self._publish_token(next(self._serials))
            return None
        if self._fresh is not None:
            logger.warning(
                "schedules of %s: the last round's token went to another consumer; stepping down",
                self.app,
            )
            await self._resubscribe()
            return None
        self._fresh = next(self._serials)
        await self._publish_token(self._fresh)
        return epoch if self.leads(epoch) else None

    async def _publish_token(self, serial: int) -> None:
        token = Token(app=self.app, pod=self.pod, serial=serial, generation=self.generation)
        await self._transport.publish(token_envelope(token))

    # -- deliveries --------------------------------------------------------------------------

    async def _on_message(self, epoch: int, delivery: Delivery) -> None:
        if epoch != self._epoch:
            return  # an ended subscription's: its channel is closed, or closing, and returns it
        if kind_of(delivery.properties) == "token":
            await self._on_token(epoch, delivery)
        elif self._leading == epoch and not self._stopping:
            await self._dispatch(epoch, delivery)
        else:
            self._waiting.append(delivery)

    async def _on_token(self, epoch: int, delivery: Delivery) -> None:
        try:
            token = token_from(delivery.properties)
        except MessageError as exc:
            logger.error("dropping a malformed token from %s: %s", delivery.queue, exc)
            await self._ack(delivery)
            return
        if self._stopping:
            return  # left unsettled: it goes to the next consumer with the channel
        if self._newer(token):
            self._spawn(self._step_down(epoch, token))
        elif self._leading != epoch:
            self._lead(epoch, delivery)
        elif token.pod == self.pod and token.serial == self._fresh:
            held, self._held, self._fresh = self._held, delivery, None
            if held is not None:
                await self._ack(held)
        else:
            await self._ack(delivery)  # one token is enough

    def _newer(self, token: Token) -> bool:
        """Whether `token` is a newer deploy's that this worker has not stepped down for."""
        key = (token.pod, token.serial)
        if token.generation <= self.generation or key in self._stepped_for:
            return False
        if len(self._stepped_for) >= 1024:
            self._stepped_for.clear()  # tokens of newer workers that came and went
        self._stepped_for.add(key)
        return True

    async def _step_down(self, epoch: int, token: Token) -> None:
        if epoch != self._epoch:
            return
        logger.warning(
            "a worker of deploy generation %d consumes the tick queue of %s: this one "
            "(generation %d) lets it lead the schedules",
            token.generation,
            self.app,
            self.generation,
        )
        try:
            await self._resubscribe()
        except BrokerError as exc:
            logger.warning("could not consume the tick queue again (%s); next round will", exc)

    def _lead(self, epoch: int, token: Delivery) -> None:
        self._leading, self._held, self._fresh = epoch, token, None
        logger.info("this worker now leads the schedules of %s (pod %s)", self.app, self.pod)
        waiting, self._waiting = self._waiting, []
        for delivery in waiting:
            self._spawn(self._dispatch(epoch, delivery))
        self._on_lead(epoch)

    async def _dispatch(self, epoch: int, delivery: Delivery) -> None:
        self._busy += 1
        self._idle.clear()
        try:
            await self._on_delivery(delivery, epoch)
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def _ack(self, delivery: Delivery) -> None:
        try:
            await self._transport.ack(delivery)
        except BrokerError as exc:  # its channel is gone: the broker has it back already
            logger.debug("could not ack a token: %s", exc)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Subscription:
    """The worker's handle on the election's consumer: stopping it hands the lead over."""

    def __init__(self, election: Election) -> None:
        self._election = election
        self.queue = tick_queue_name(election.app)

    @property
    def is_active(self) -> bool:
        return self._election.subscribed

    async def cancel(self) -> None:
        await self._election.stop()

    async def close(self) -> None:
        await self._election.stop()
