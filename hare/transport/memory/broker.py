"""The in-memory broker: exchanges, queues, bindings, TTLs and dead-lettering on a Clock.

One `MemoryBroker` is the state that several `MemoryTransport` connections share, so a
producer and a worker can be separate objects as they are against RabbitMQ. Everything here is
synchronous except the expiry timer; the transport in `memory.py` adds connections, delivery
tags and consumer tasks. The semantics are RabbitMQ 3.10's, cited where they are not obvious.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, final

from hare.clock import Clock, SystemClock
from hare.core.envelope import Envelope
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    MessageReturned,
    NotFound,
    NotSupportedError,
    PublishError,
    PublishNacked,
)
from hare.transport.fieldtable import encode_table
from hare.transport.memory.queue import (
    MemoryQueue,
    StoredMessage,
    Subscriber,
    copy_headers,
    dead_letter_properties,
    is_dead_letter_cycle,
)
from hare.transport.memory.stream import StreamQueue
from hare.transport.memory.timer import DeadlineTimer, now_ms
from hare.transport.memory.topology import (
    ExchangeRoutes,
    check_exchange_equivalence,
    check_queue_equivalence,
    parse_expiration,
    queue_settings,
)

__all__ = ("MemoryBroker", "Outcome")

#: How a delivery was settled: basic.ack, basic.reject with requeue, basic.reject without.
Outcome = Literal["ack", "requeue", "reject"]

#: The exchanges every RabbitMQ virtual host has from the start (besides the default one).
_PREDECLARED = (
    Exchange(name="amq.direct", type="direct"),
    Exchange(name="amq.fanout", type="fanout"),
    Exchange(name="amq.topic", type="topic"),
    Exchange(name="amq.headers", type="headers"),
    Exchange(name="amq.match", type="headers"),
)


@final
class MemoryBroker:
    """The shared state of an in-process broker: what a RabbitMQ virtual host holds.

    Messages expire by the broker's clock: the one given here, else the one the first
    `MemoryTransport` brings, else the system clock. Expiry runs while a transport is connected.

    Tests read it through `clock`, `queue_names`, `exchange_names`, `bindings`,
    `message_count` and `unsettled_count`; the other methods are what a `MemoryTransport`
    (a connection) asks of it, and are not meant to be called directly.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock | None = clock
        self._exchanges: dict[str, ExchangeRoutes] = {
            x.name: ExchangeRoutes(x) for x in _PREDECLARED
        }
        self._queues: dict[str, MemoryQueue] = {}
        self._connections = 0
        #: For tests: while true, every `connect()` fails as if the broker were down; an
        #: error (e.g. a `BrokerTLSError`) instead is what every `connect()` raises.
        self.refusing: bool | BrokerUnavailable = False
        self._timer = DeadlineTimer(lambda: self.clock, self._next_deadline, self._fire)

    # -- introspection, for tests -----------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock messages expire by (fixed from its first use on)."""
        if self._clock is None:
            self._clock = SystemClock()
        return self._clock

    def queue_names(self) -> tuple[str, ...]:
        """The names of the queues that exist now."""
        return tuple(self._queues)

    def exchange_names(self) -> tuple[str, ...]:
        """The names of the exchanges that exist now (not the default exchange `""`)."""
        return tuple(self._exchanges)

    def bindings(self) -> tuple[Binding, ...]:
        """Every binding, in the order they were made per exchange."""
        return tuple(b for routes in self._exchanges.values() for b in routes.bindings)

    def message_count(self, queue: str) -> int:
        """Ready messages in `queue`, as a passive declare reports them."""
        state = self._queue(queue)
        self._expire(state)
        if isinstance(state, StreamQueue):
            state.retain(self.now_ms())
        return len(state.ready)

    def is_stream(self, queue: str) -> bool:
        """Whether `queue` exists and is a stream."""
        return isinstance(self._queues.get(queue), StreamQueue)

    def unsettled_count(self, queue: str) -> int:
        """Messages of `queue` delivered and neither acked nor rejected yet."""
        return self._queue(queue).unsettled

    # -- the timer and the connections that keep it running ---------------------------------

    def adopt_clock(self, clock: Clock) -> None:
        """Use `clock` if none is fixed yet; refuse a second, different clock."""
        if self._clock is None:
            self._clock = clock
        elif self._clock is not clock:
            raise ConfigurationError("a MemoryBroker's transports must share one clock")

    def attach(self) -> None:
        """A transport connected: run the expiry timer while any is."""
        self._connections += 1
        self._timer.start()

    async def detach(self) -> None:
        """A transport closed: stop the timer after the last one."""
        self._connections -= 1
        if self._connections <= 0:
            await self._timer.stop()

    def now_ms(self) -> int:
        return now_ms(self.clock)

    def _next_deadline(self) -> int | None:
        deadlines = [d for q in self._queues.values() if (d := q.deadline()) is not None]
        return min(deadlines) if deadlines else None

    def _fire(self, now: int) -> None:
        """Expire what is due: messages at queue heads, and queues unused for `x-expires`."""
        for queue in list(self._queues.values()):
            deadline = queue.head_deadline()
            if deadline is not None and deadline <= now and not queue.deleted:
                self._expire(queue, now)
            idle = queue.idle_deadline()
            if idle is not None and idle <= now and not queue.deleted:
                self._remove_queue(queue)

    def _head_changed(self, queue: MemoryQueue) -> None:
        self._timer.poke(queue.deadline())

    # -- declarations -------------------------------------------------------------------------

    def declare_exchange(self, exchange: Exchange) -> None:
        if exchange.name == "" or exchange.name == "amq.default":
            raise BrokerError("ACCESS_REFUSED - operation not permitted on the default exchange")
        existing = self._exchanges.get(exchange.name)
        if existing is not None:
            check_exchange_equivalence(existing.exchange, exchange)
            return
        if exchange.name.startswith("amq."):
            raise BrokerError(
                f"ACCESS_REFUSED - exchange name {exchange.name!r} uses the reserved 'amq.' prefix"
            )
        if exchange.type not in ("direct", "fanout", "topic", "headers"):
            raise BrokerError(f"COMMAND_INVALID - invalid exchange type {exchange.type!r}")
        self._exchanges[exchange.name] = ExchangeRoutes(exchange)

    def declare_queue(self, queue: Queue, owner: object) -> None:
        if queue.name == "":
            # basic.declare with an empty name asks for a server-named queue; the Protocol has no
            # way to return the name, so refuse rather than make a queue nobody can address.
            raise BrokerError("server-named queues are not supported: give the queue a name")
        existing = self._queues.get(queue.name)
        if existing is not None:
            self._check_owner(existing, owner)
            check_queue_equivalence(existing.spec, queue)
            self._used(existing)
            return
        if queue.name.startswith("amq."):
            raise BrokerError(
                f"ACCESS_REFUSED - queue name {queue.name!r} contains reserved prefix 'amq.*'"
            )
        settings = queue_settings(queue)
        if settings.stream:
            self._queues[queue.name] = StreamQueue(queue, settings)
        else:
            self._queues[queue.name] = MemoryQueue(
                queue, settings, owner if queue.exclusive else None
            )
        self._used(self._queues[queue.name])

    def _used(self, queue: MemoryQueue) -> None:
        """The queue was used (declared, read with get, left by its last consumer)."""
        queue.last_used_ms = self.now_ms()
        self._head_changed(queue)

    def bind(self, binding: Binding) -> None:
        if binding.exchange == "":
            raise BrokerError("ACCESS_REFUSED - operation not permitted on the default exchange")
        source = self._exchange(binding.exchange)
        if binding.to_exchange:
            self._exchange(binding.destination)
        else:
            self._queue(binding.destination)
        source.add(binding)

    def delete_queue(self, name: str, owner: object) -> None:
        queue = self._queues.get(name)
        if queue is None:
            return
        self._check_owner(queue, owner)
        self._remove_queue(queue)

    def delete_owned(self, owner: object) -> None:
        """Delete the exclusive queues of a connection that closed."""
        for queue in [q for q in self._queues.values() if q.owner is owner]:
            self._remove_queue(queue)

    def _remove_queue(self, queue: MemoryQueue) -> None:
        # Deleting a queue discards its messages without dead-lettering them, drops its
        # bindings (which may auto-delete their exchanges) and cancels its consumers.
        queue.deleted = True
        queue.purge()
        for subscriber in queue.subscribers:
            subscriber.on_queue_deleted()  # RabbitMQ sends basic.cancel to its consumers
        queue.subscribers.clear()
        del self._queues[queue.name]
        self._unbind_destination(queue.name, to_exchange=False)

    def _unbind_destination(self, name: str, *, to_exchange: bool) -> None:
        for routes in list(self._exchanges.values()):
            if routes.remove_destination(name, to_exchange=to_exchange):
                self._maybe_auto_delete(routes)

    def _maybe_auto_delete(self, routes: ExchangeRoutes) -> None:
        # An auto-delete exchange goes when the last binding whose source it is goes; bindings
        # to it go with it, which may cascade (measured on 3.10.8).
        if routes.exchange.auto_delete and not routes.bindings:
            if self._exchanges.get(routes.exchange.name) is routes:
                del self._exchanges[routes.exchange.name]
                self._unbind_destination(routes.exchange.name, to_exchange=True)

    # -- publishing and routing ---------------------------------------------------------------

    def publish(self, envelope: Envelope, *, mandatory: bool) -> None:
        """Route and enqueue `envelope`; return when it is "confirmed"."""
        exchange, routing_key = envelope.exchange, envelope.routing_key
        try:
            ttl_ms = parse_expiration(envelope.properties.expiration)
        except ValueError as exc:
            raise PublishError(str(exc), exchange=exchange, routing_key=routing_key) from None
        if exchange != "":
            routes = self._exchanges.get(exchange)
            if routes is None:
                # RabbitMQ closes the channel with 404 NOT_FOUND; the publish is not confirmed.
                raise PublishError(
                    f"NOT_FOUND - no exchange {exchange!r}",
                    exchange=exchange,
                    routing_key=routing_key,
                )
            if routes.exchange.internal:
                raise PublishError(
                    f"ACCESS_REFUSED - cannot publish to internal exchange {exchange!r}",
                    exchange=exchange,
                    routing_key=routing_key,
                )
        encode_table(envelope.properties.headers)  # what the wire cannot carry fails here too
        headers = copy_headers(envelope.properties.headers)
        properties = replace(envelope.properties, headers=headers)
        targets = self._route(exchange, routing_key, headers)
        if not targets:
            if mandatory:
                raise MessageReturned(
                    "NO_ROUTE - no queue is bound for this routing key",
                    exchange=exchange,
                    routing_key=routing_key,
                    reply_code=312,
                )
            return  # RabbitMQ drops an unroutable message that is not mandatory, and confirms it
        refused = []
        for queue in targets:
            message = StoredMessage(
                body=envelope.body,
                properties=properties,
                exchange=exchange,
                routing_key=routing_key,
                ttl_ms=ttl_ms,
            )
            if queue.refuses(message):
                refused.append(queue.name)
                if queue.settings.overflow == "reject-publish-dlx":
                    self._dead_letter(queue, message, "maxlen")
                continue
            self._enqueue(queue, message)
        if refused:
            # With several target queues, the others keep the message (docs: maxlength).
            raise PublishNacked(
                f"basic.nack: queue {', '.join(refused)} is full (x-overflow reject-publish)",
                exchange=exchange,
                routing_key=routing_key,
            )

    def _route(
        self, exchange: str, routing_key: str, headers: Mapping[str, Any]
    ) -> list[MemoryQueue]:
        if exchange == "":
            queue = self._queues.get(routing_key)
            return [queue] if queue is not None else []
        # rabbit_exchange:route/2: walk exchange-to-exchange bindings breadth first, each
        # exchange once; an exchange whose own bindings match nothing hands the message to its
        # alternate exchange, even if exchanges it does route to reach no queue (measured).
        found: dict[str, MemoryQueue] = {}
        seen: set[str] = set()
        pending = [exchange]
        while pending:
            name = pending.pop(0)
            routes = self._exchanges.get(name)
            if name in seen or routes is None:
                continue
            seen.add(name)
            matched = routes.match(routing_key, headers)
            if not matched and routes.alternate is not None:
                pending.append(routes.alternate)
            for binding in matched:
                if binding.to_exchange:
                    pending.append(binding.destination)
                elif (queue := self._queues.get(binding.destination)) is not None:
                    found.setdefault(queue.name, queue)
        return list(found.values())

    def _enqueue(self, queue: MemoryQueue, message: StoredMessage) -> None:
        now = self.now_ms()
        self._expire(queue, now)
        queue.append(message, now)
        for dropped in queue.over_limit():
            self._dead_letter(queue, dropped, "maxlen")
        # A message a consumer can take at once is delivered before it can expire: TTL 0
        # means "now or never" (docs: ttl).
        self.dispatch(queue, fresh=True)
        self._expire(queue, now)
        self._head_changed(queue)

    # -- delivery and settlement ----------------------------------------------------------------

    def open_queue(self, name: str, owner: object) -> MemoryQueue:
        """The queue `owner` may use: NOT_FOUND if missing, RESOURCE_LOCKED if not its own."""
        queue = self._queue(name)
        self._check_owner(queue, owner)
        return queue

    def subscribe(
        self, queue: MemoryQueue, who: Subscriber, args: Mapping[str, Any], prefetch: int
    ) -> None:
        """Add a consumer (`args` checked by `hare.core.topology.consumer_arguments`)."""
        offset = args.get("x-stream-offset")
        if not isinstance(queue, StreamQueue):
            if offset is not None:
                raise BrokerError(
                    f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue {queue.name!r}"
                )
            queue.subscribe(who)
            return
        if prefetch == 0:
            raise BrokerError(
                f"PRECONDITION_FAILED - consumer prefetch count is not set for {queue.name!r}"
            )
        queue.retain(self.now_ms())
        queue.subscribe(who, offset)

    def unsubscribe(self, queue: MemoryQueue, subscriber: Subscriber) -> None:
        queue.unsubscribe(subscriber)
        if not queue.subscribers:
            self._used(queue)
        # An auto-delete queue goes when its last consumer does (it must have had one).
        if queue.spec.auto_delete and queue.had_subscribers and not queue.subscribers:
            if not queue.deleted:
                self._remove_queue(queue)

    def dispatch(self, queue: MemoryQueue, *, fresh: bool = False) -> None:
        """Hand ready messages to consumers with room."""
        if not fresh:
            self._expire(queue)
        queue.dispatch()
        self._head_changed(queue)

    def get(self, queue_name: str, owner: object) -> tuple[MemoryQueue, StoredMessage] | None:
        queue = self.open_queue(queue_name, owner)
        _refuse_stream(queue, "basic.get")
        self._used(queue)
        self._expire(queue)
        if not queue.ready:
            return None
        message = queue.take()
        queue.unsettled += 1
        self._head_changed(queue)
        return queue, message

    def settle(self, queue: MemoryQueue, message: StoredMessage, outcome: Outcome) -> None:
        """Finish a delivery: `ack`, `requeue` (reject, requeue) or `reject` (no requeue)."""
        queue.unsettled -= 1
        if queue.deleted:
            return  # RabbitMQ ignores settling a message whose queue is gone
        if queue.settings.stream:
            pass  # a stream keeps every message: a settle only gives the consumer credit
        elif outcome == "reject":
            self._dead_letter(queue, message, "rejected")
        elif outcome == "requeue":
            self._return(queue, message)
        self.dispatch(queue)

    def _return(self, queue: MemoryQueue, message: StoredMessage) -> None:
        message.returns += 1
        limit = queue.settings.delivery_limit
        # rabbit_fifo: a message returned more times than x-delivery-limit is dead-lettered
        # (or dropped), so it is delivered limit + 1 times in all (measured on 3.10.8).
        if limit is not None and message.returns > limit:
            self._dead_letter(queue, message, "delivery_limit")
            return
        queue.requeue(message)

    def purge(self, queue_name: str, owner: object) -> int:
        queue = self.open_queue(queue_name, owner)
        _refuse_stream(queue, "queue.purge")
        self._expire(queue)
        return queue.purge()

    # -- expiry and dead-lettering --------------------------------------------------------------

    def _expire(self, queue: MemoryQueue, now: int | None = None) -> None:
        for message in queue.take_expired(self.now_ms() if now is None else now):
            self._dead_letter(queue, message, "expired")

    def _dead_letter(self, queue: MemoryQueue, message: StoredMessage, reason: str) -> None:
        # At-most-once, as classic queues and quorum queues without the at-least-once
        # strategy do: without a DLX, or with one that does not exist, the message is gone.
        dlx = queue.settings.dead_letter_exchange
        if dlx is None or (dlx != "" and dlx not in self._exchanges):
            return
        routing_key = queue.settings.dead_letter_routing_key or message.routing_key
        properties = dead_letter_properties(
            message.properties,
            queue=queue.name,
            reason=reason,
            exchange=message.exchange,
            routing_key=message.routing_key,
            time=datetime.fromtimestamp(int(self.clock.time()), tz=UTC),
        )
        for target in self._route(dlx, routing_key, properties.headers):
            if is_dead_letter_cycle(target.name, properties, reason):
                continue
            copy = StoredMessage(
                body=message.body, properties=properties, exchange=dlx, routing_key=routing_key
            )
            if not target.refuses(copy):
                self._enqueue(target, copy)

    # -- lookups ----------------------------------------------------------------------------------

    def _queue(self, name: str) -> MemoryQueue:
        queue = self._queues.get(name)
        if queue is None:
            raise NotFound(f"NOT_FOUND - no queue {name!r}")
        return queue

    def _exchange(self, name: str) -> ExchangeRoutes:
        routes = self._exchanges.get(name)
        if routes is None:
            raise NotFound(f"NOT_FOUND - no exchange {name!r}")
        return routes

    @staticmethod
    def _check_owner(queue: MemoryQueue, owner: object) -> None:
        if queue.owner is not None and queue.owner is not owner:
            raise BrokerError(
                f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue {queue.name!r}"
            )


def _refuse_stream(queue: MemoryQueue, method: str) -> None:
    # RabbitMQ closes the whole connection (540 NOT_IMPLEMENTED); hare refuses beforehand.
    if queue.settings.stream:
        raise NotSupportedError(f"{method} on stream {queue.name!r}", "use a consumer")
