"""The RabbitMQ transport: hare's `Transport` on aiormq (with `amqp_errors`, the only importers).

Channels by job: one **publish** channel in confirm mode shared by every publish (aiormq
pipelines them and matches each confirm to its delivery tag); one **declare** channel used one
call at a time, since a 404/406 closes it under every call queued on it, reopened on next use;
one **get** channel, so a failed declaration cannot requeue what `get` fetched; one channel
**per consumer**, with basic.qos(prefetch), on which its deliveries are settled. aiormq/pamqp
exceptions become hare errors in `AmqpTransport._error` and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, cast, final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiormq
from aiormq import exceptions as aiormq_errors
from aiormq.abc import DeliveredMessage
from aiormq.channel import Channel
from pamqp import commands as spec

from hare import errors
from hare.core.envelope import DEFAULT_MAX_MESSAGE_SIZE, Delivery, Envelope, check_size
from hare.core.settings import mask_url
from hare.core.topology import Binding, Exchange, Queue, consumer_arguments
from hare.transport.amqp.acks import AckCoalescer
from hare.transport.amqp.errors import (
    AIORMQ_ERRORS,
    Operation,
    broker_error,
    cancelled_here,
    connect_failure,
    quiet_aiormq_connection_logs,
    route,
)
from hare.transport.amqp.tls import explain
from hare.transport.base import DeliveryHandler
from hare.transport.fieldtable import AmqpProperties, hare_properties

__all__ = ("AmqpConsumer", "AmqpTransport", "mask_url")

log = logging.getLogger("hare.transport.amqp")
quiet_aiormq_connection_logs()

T = TypeVar("T")
Job = Literal["publish", "declare", "get"]  # the transport's own channels

_MAX_PREFETCH: Final = 65535  # basic.qos prefetch-count is an AMQP short


def _delivery(queue: str, message: DeliveredMessage) -> Delivery:
    frame = cast(spec.Basic.Deliver | spec.Basic.GetOk, message.delivery)
    return Delivery(
        queue=queue,
        body=message.body,
        properties=hare_properties(message.header.properties),
        exchange=frame.exchange,
        routing_key=frame.routing_key or "",
        delivery_tag=cast(int, frame.delivery_tag),
        redelivered=frame.redelivered,
        handle=message.channel,
    )


def _with_query(url: str, options: Mapping[str, str]) -> str:
    """`url` with aiormq's query options added, unless the URL sets them itself."""
    parts = urlsplit(url)
    query = dict(options) | dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query=urlencode(query)))


@final
@dataclass(eq=False)
class AmqpConsumer:
    """A subscription to one queue on a channel of its own, which outlives `cancel` so that
    deliveries already received can still be settled; it closes with `close` or the transport."""

    queue: str
    handler: DeliveryHandler
    prefetch: int
    channel: Channel
    consumer_tag: str
    transport: AmqpTransport = field(repr=False)
    arguments: Mapping[str, Any] = field(default_factory=dict)
    cancelled: bool = False  # by `cancel`: a reconnect must not start it again

    @property
    def is_active(self) -> bool:
        """Whether deliveries still come: not after `cancel`, a broker cancel or a lost channel."""
        return not self.channel.is_closed and self.consumer_tag in self.channel.consumers

    async def cancel(self) -> None:
        """Send basic.cancel; unsettled deliveries stay unsettled (and can still be settled)."""
        self.cancelled = True
        if not self.is_active:
            return
        try:
            await self.channel.basic_cancel(self.consumer_tag, timeout=self.transport._timeout)
        except AIORMQ_ERRORS as exc:
            subject = f"cancel of the consumer of queue {self.queue!r}"
            raise self.transport._error(exc, "consume", subject) from exc

    async def close(self) -> None:
        """Close its channel: RabbitMQ cancels it and requeues what it has not settled."""
        self.cancelled = True
        with contextlib.suppress(*AIORMQ_ERRORS, RuntimeError):
            async with asyncio.timeout(self.transport._timeout):
                await self.channel.close()


@final
class AmqpTransport:
    """hare's `Transport` on RabbitMQ.

    `url` is one AMQP URL or several to try in turn (a cluster's nodes); aiormq's query
    options in it (``heartbeat``, ``name``, TLS files) win over the keywords. `connect_timeout`
    bounds `connect` over all URLs; `publish_timeout` bounds waiting for a publish's confirm
    and every other round trip to the broker. `heartbeat` is in seconds (0: off); `name` is
    the connection name shown in the management UI.

    A lost connection is reported, not repaired: `connection_lost` (an `asyncio.Event`) is set
    when the connection closes other than by `close()`, and `close_reason` says why. It stays
    set until the owner clears it (a reconnect by someone else must not hide the loss from
    the owner). The owner reconnects: `connect()` again, declare `declared` again and restart
    `consumers`.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        connect_timeout: float = 10.0,
        publish_timeout: float = 30.0,
        heartbeat: int = 30,
        name: str | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise errors.ConfigurationError("AmqpTransport needs at least one broker URL")
        options = {"heartbeat": str(heartbeat)} | ({"name": name} if name else {})
        self._urls = tuple(_with_query(u, options) for u in urls)
        self._connect_timeout = connect_timeout
        self._timeout = publish_timeout
        self._max_size = max_message_size
        self._connection: aiormq.Connection | None = None
        self._channels: dict[Job, Channel] = {}
        self._publish_lock = asyncio.Lock()
        # Publish deadlines share one timer: an asyncio.timeout per publish (a TimerHandle
        # and a heap push and cancel each) cost ~12% of a pipelined publish's CPU.
        self._inflight: dict[asyncio.Task[Any], float] = {}  # in deadline order
        self._expired: set[asyncio.Task[Any]] = set()
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._connect_lock = asyncio.Lock()
        self._serial = asyncio.Lock()
        self._declared: dict[tuple[str, ...], Exchange | Queue | Binding] = {}
        self._consumers: list[AmqpConsumer] = []
        self._acks: weakref.WeakKeyDictionary[Channel, AckCoalescer] = weakref.WeakKeyDictionary()
        self.connection_lost = asyncio.Event()
        self.close_reason: BaseException | None = None

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @property
    def declared(self) -> tuple[Exchange | Queue | Binding, ...]:
        """Everything declared so far, in order: what a reconnect must declare again."""
        return tuple(self._declared.values())

    @property
    def consumers(self) -> tuple[AmqpConsumer, ...]:
        """The consumers started and not cancelled: what a reconnect must start again."""
        self._consumers = [consumer for consumer in self._consumers if not consumer.cancelled]
        return tuple(self._consumers)

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the first URL that answers, or raise `BrokerUnavailable` by the deadline.

        Each URL gets an equal share of the time left, so a blackholed node cannot use up the
        budget of those after it; a refused port fails at once and passes its share on."""
        async with self._connect_lock:  # one connection, however many callers race here
            if not self.is_connected:
                self._adopt(await self._dial())

    async def _dial(self) -> aiormq.Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        failures: list[str] = []
        last: BaseException | None = None
        tls_failed = False  # a TLS misconfiguration: raised as such, never waited out
        for index, url in enumerate(self._urls):
            share = max(0.0, deadline - loop.time()) / (len(self._urls) - index)
            try:
                async with asyncio.timeout(share):
                    connection = await aiormq.connect(url)
            except AIORMQ_ERRORS as exc:  # TimeoutError included
                tls = await explain(exc, url, probe_for=min(5.0, max(1.0, deadline - loop.time())))
                failures.append(connect_failure(exc, url, share, tls=tls))
                tls_failed, last = tls_failed or tls is not None, exc
            else:
                return connection
        if isinstance(last, TimeoutError):
            detail = f"no broker within {self._connect_timeout}s: " + "; ".join(failures)
        else:
            detail = "cannot connect to the broker: " + "; ".join(failures)
        raise (errors.BrokerTLSError if tls_failed else errors.BrokerUnavailable)(detail) from last

    def _adopt(self, connection: aiormq.Connection) -> None:
        self._connection = connection
        self.close_reason = None
        self._channels.clear()

        def on_closed(observer: asyncio.Future[Any]) -> None:
            if self._connection is not connection:
                return  # closed by close(), or replaced already
            reason = None if observer.cancelled() else observer.exception()
            self.close_reason = reason
            if cancelled_here(reason, connection):
                # Its tasks were cancelled in this process, most often by `asyncio.run`
                # ending with the app still open: a script that published and returned.
                log.debug("the broker connection ended: its tasks were cancelled")
            else:
                log.warning("lost the broker connection: %r", reason)
            self.connection_lost.set()

        connection.closing.add_done_callback(on_closed)

    async def close(self) -> None:
        """Close the connection; RabbitMQ requeues every unsettled delivery."""
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed:
            return
        # Operations still in flight fail with this reason. aiormq's default, CancelledError,
        # would look to their callers like a cancellation of their own task.
        reason = aiormq_errors.ConnectionClosed(200, "closed by the hare transport")
        try:
            async with asyncio.timeout(self._connect_timeout):
                await connection.close(reason)
        except TimeoutError:
            log.warning("the broker did not answer connection.close in time")

    async def __aenter__(self) -> AmqpTransport:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _channel(self, job: Job) -> Channel:
        """The channel for `job`, opened anew if the broker closed it (e.g. with a 404/406)."""
        channel = self._channels.get(job)
        if channel is None or channel.is_closed:
            channel = await self._open_channel(confirms=job == "publish")
            self._channels[job] = channel
        return channel

    async def _open_channel(self, *, confirms: bool) -> Channel:
        connection = self._connection
        if connection is None or connection.is_closed:
            raise errors.BrokerUnavailable("not connected to the broker")
        try:
            async with asyncio.timeout(self._timeout):
                # With aiormq's on_return_raises=True a basic.return fails the confirm future.
                channel = await connection.channel(publisher_confirms=confirms)
        except (*AIORMQ_ERRORS, RuntimeError) as exc:  # RuntimeError: "connection closed"
            raise errors.BrokerUnavailable(f"cannot open a channel: {exc!r}") from exc
        return cast(Channel, channel)

    # -- topology and queues -----------------------------------------------------------------

    async def declare_exchange(self, exchange: Exchange) -> None:
        declare = lambda ch: ch.exchange_declare(  # noqa: E731
            exchange.name,
            exchange_type=exchange.type,
            durable=exchange.durable,
            auto_delete=exchange.auto_delete,
            internal=exchange.internal,
            arguments=dict(exchange.arguments),
        )
        await self._call("declare", f"exchange {exchange.name!r}", declare, "declare")
        self._declared[("exchange", exchange.name)] = exchange

    async def declare_queue(self, queue: Queue) -> None:
        declare = lambda ch: ch.queue_declare(  # noqa: E731
            queue.name,
            durable=queue.durable,
            exclusive=queue.exclusive,
            auto_delete=queue.auto_delete,
            arguments=dict(queue.arguments),
        )
        await self._call("declare", f"queue {queue.name!r}", declare, "declare")
        self._declared[("queue", queue.name)] = queue

    async def bind(self, binding: Binding) -> None:
        key = (binding.destination, binding.exchange, binding.routing_key)
        arguments = dict(binding.arguments)

        bind = lambda ch: (ch.exchange_bind if binding.to_exchange else ch.queue_bind)(  # noqa: E731
            *key, arguments=arguments
        )
        subject = f"binding of {binding.destination!r} to exchange {binding.exchange!r}"
        await self._call("declare", subject, bind, "declare")
        self._declared[("binding", str(binding.to_exchange), *key)] = binding

    async def delete_queue(self, name: str) -> None:
        # RabbitMQ answers queue.delete of a missing queue with delete-ok, not 404.
        await self._call("declare", f"queue {name!r}", lambda ch: ch.queue_delete(name))
        self._declared.pop(("queue", name), None)

    async def purge(self, queue: str) -> int:
        self._refuse_stream(queue, "queue.purge")
        ok = await self._call("declare", f"queue {queue!r}", lambda ch: ch.queue_purge(queue))
        return ok.message_count or 0

    async def message_count(self, queue: str) -> int:
        return (await self._passive(queue)).message_count or 0

    async def consumer_count(self, queue: str) -> int:
        return (await self._passive(queue)).consumer_count or 0

    async def _passive(self, queue: str) -> spec.Queue.DeclareOk:
        declare = lambda ch: ch.queue_declare(queue, passive=True)  # noqa: E731
        return await self._call("declare", f"queue {queue!r}", declare)

    def _refuse_stream(self, queue: str, method: str) -> None:
        # RabbitMQ answers with connection.close 540 NOT_IMPLEMENTED: refuse it beforehand.
        declared = self._declared.get(("queue", queue))
        if isinstance(declared, Queue) and declared.arguments.get("x-queue-type") == "stream":
            raise errors.NotSupportedError(
                f"{method} on stream {queue!r}", "use a consumer; ack, never reject"
            )

    async def _call(
        self, job: Job, what: str, call: Callable[[Channel], Awaitable[T]], op: Operation = "queue"
    ) -> T:
        # One call at a time: a channel error closes the channel under every call queued on it.
        async with self._serial:
            channel = await self._channel(job)
            try:
                async with asyncio.timeout(self._timeout):
                    return await call(channel)
            except AIORMQ_ERRORS as exc:
                if isinstance(exc, TimeoutError) and self._channels.get(job) is channel:
                    del self._channels[job]  # aiormq refuses calls on it, yet not is_closed
                raise self._error(exc, op, what) from exc

    # -- publish -----------------------------------------------------------------------------

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        """Publish and wait for the broker's confirm (see `Transport.publish`)."""
        check_size(envelope, self._max_size)
        channel = self._channels.get("publish")
        if channel is None or channel.is_closed:
            async with self._publish_lock:  # one new channel, not one per waiting publish
                channel = await self._channel("publish")
        loop, task = asyncio.get_running_loop(), cast("asyncio.Task[Any]", asyncio.current_task())
        self._inflight[task] = deadline = loop.time() + self._timeout
        if self._deadline_timer is None:
            self._deadline_timer = loop.call_at(deadline, self._expire)
        try:
            confirm = await channel.basic_publish(
                envelope.body,
                exchange=envelope.exchange,
                routing_key=envelope.routing_key,
                properties=AmqpProperties.from_hare(envelope.properties),
                mandatory=mandatory,
            )
        except asyncio.CancelledError:
            if task not in self._expired or task.uncancel():
                raise  # cancelled by someone else, not (only) by the deadline
            detail = f"{_where(envelope)}: no confirm within {self._timeout}s"
            raise errors.PublishTimeout(detail, **route(envelope)) from None
        except AIORMQ_ERRORS as exc:
            raise self._error(exc, "publish", _where(envelope), envelope) from exc
        finally:
            del self._inflight[task]
            self._expired.discard(task)
        if not isinstance(confirm, spec.Basic.Ack):  # never report an unconfirmed publish
            detail = f"{_where(envelope)}: not confirmed ({confirm!r})"
            raise errors.PublishNacked(detail, **route(envelope))

    def _expire(self) -> None:
        """Cancel the publishes past their deadline; re-arm for the oldest one left."""
        self._deadline_timer = None
        loop = asyncio.get_running_loop()
        for task, deadline in self._inflight.items():
            if deadline > loop.time():
                self._deadline_timer = loop.call_at(deadline, self._expire)
                return
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()

    # -- consume, get, settle ----------------------------------------------------------------

    async def consume(
        self,
        queue: str,
        handler: DeliveryHandler,
        *,
        prefetch: int,
        arguments: Mapping[str, Any] | None = None,
    ) -> AmqpConsumer:
        """Subscribe on a channel of its own with basic.qos(prefetch); aiormq runs `handler` in
        a task per delivery. An exception from `handler` is logged, the delivery left unsettled."""
        if not 1 <= prefetch <= _MAX_PREFETCH:
            detail = f"prefetch must be within 1..{_MAX_PREFETCH}, not {prefetch}"
            raise errors.ConfigurationError(detail)
        checked = consumer_arguments(arguments)

        async def on_message(message: DeliveredMessage) -> None:
            acks.delivered(cast(int, message.delivery_tag))
            try:
                await handler(_delivery(queue, message))
            except Exception:
                log.exception("the handler for queue %r failed; delivery left unsettled", queue)

        channel = await self._open_channel(confirms=False)
        acks = self._acks[channel] = AckCoalescer(
            lambda tag, multiple: channel.basic_ack(tag, multiple=multiple)
        )
        try:
            async with asyncio.timeout(self._timeout):
                await channel.basic_qos(prefetch_count=prefetch)
                ok = await channel.basic_consume(queue, on_message, arguments=checked)
        except BaseException as exc:
            with contextlib.suppress(*AIORMQ_ERRORS, RuntimeError):
                async with asyncio.timeout(self._timeout):
                    await channel.close()
            if isinstance(exc, AIORMQ_ERRORS):
                raise self._error(exc, "consume", f"queue {queue!r}") from exc
            raise
        tag = cast(str, ok.consumer_tag)
        consumer = AmqpConsumer(queue, handler, prefetch, channel, tag, self, checked)
        self._consumers.append(consumer)
        return consumer

    async def get(self, queue: str) -> Delivery | None:
        self._refuse_stream(queue, "basic.get")
        message = await self._call("get", f"queue {queue!r}", lambda ch: ch.basic_get(queue), "get")
        if isinstance(message.delivery, spec.Basic.GetEmpty):
            return None
        return _delivery(queue, message)

    async def ack(self, delivery: Delivery) -> None:
        # wait=True (aiormq's default): return once the frame is handed to the socket, so an
        # ack on a dead connection raises instead of vanishing. AMQP never confirms an ack;
        # one lost with its connection comes back as a redelivery: at-least-once either way.
        # Acks of one consumer channel asked for in one loop turn share a frame (see acks.py).
        channel = _channel_of(delivery)
        acks = self._acks.get(channel)
        try:
            if acks is None:
                await channel.basic_ack(delivery.delivery_tag)
            else:
                await acks.ack(delivery.delivery_tag)
        except AIORMQ_ERRORS as exc:
            raise self._error(exc, "settle", f"ack of {_where(delivery)}") from exc

    async def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        self._refuse_stream(delivery.queue, "basic.reject")
        channel = _channel_of(delivery)
        acks = self._acks.get(channel)
        tag = delivery.delivery_tag
        try:
            if acks is None:
                await channel.basic_reject(tag, requeue=requeue)
            else:
                await acks.reject(tag, lambda: channel.basic_reject(tag, requeue=requeue))
        except AIORMQ_ERRORS as exc:
            raise self._error(exc, "settle", f"reject of {_where(delivery)}") from exc

    def _error(
        self, exc: BaseException, op: Operation, what: str, envelope: Envelope | None = None
    ) -> errors.BrokerError:
        return broker_error(
            exc, op, what, envelope, timeout=self._timeout, connected=self.is_connected
        )


def _channel_of(delivery: Delivery) -> Channel:
    if delivery.handle is None:
        raise errors.BrokerError(f"{_where(delivery)} did not come from an AmqpTransport")
    return cast(Channel, delivery.handle)


def _where(item: Envelope | Delivery) -> str:
    if isinstance(item, Delivery):
        return f"delivery {item.delivery_tag} from queue {item.queue!r}"
    return f"publish to exchange {item.exchange!r} with routing key {item.routing_key!r}"
