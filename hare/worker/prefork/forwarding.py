"""What a prefork child publishes goes through its parent, which owns the broker connection.

A task in a child calls `other.delay()`, builds a chain, revokes a task: the child's app
encodes the messages itself, with its own `Publisher`, on a `ForwardingTransport`. That
transport sends each broker operation (declare, bind, publish...) over a pipe to the parent
(`Relay`), where `serve_relay` runs it on the worker's own transport and sends back the
outcome: a publish returns once the broker confirmed it, as anywhere else. Consuming is the
parent's alone.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from hare.core.envelope import Delivery, Envelope
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import BrokerError, NotSupportedError
from hare.transport.base import Consumer, DeliveryHandler, Transport

__all__ = ("FORWARDED", "ForwardingTransport", "Relay", "round_trips", "serve_relay")

logger = logging.getLogger("hare.worker")

#: The transport operations a child may ask of its parent.
FORWARDED = frozenset(
    {
        "declare_exchange",
        "declare_queue",
        "bind",
        "delete_queue",
        "publish",
        "purge",
        "message_count",
        "consumer_count",
    }
)


class Relay:
    """The child's end of the pipe to its parent: one operation at a time, waited for."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._connection.send_bytes(pickle.dumps((operation, args, kwargs)))
            ok, value = pickle.loads(self._connection.recv_bytes())
        if ok:
            return value
        raise value


class ForwardingTransport:
    """A `Transport` whose broker is the parent's connection (see the module's docstring)."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self.connection_lost = asyncio.Event()

    async def connect(self) -> None:
        return None  # the parent's connection; it reconnects it

    async def close(self) -> None:
        return None

    @property
    def is_connected(self) -> bool:
        return True  # a lost connection comes back as `BrokerUnavailable`, retried as usual

    async def declare_exchange(self, exchange: Exchange) -> None:
        self._relay.call("declare_exchange", exchange)

    async def declare_queue(self, queue: Queue) -> None:
        self._relay.call("declare_queue", queue)

    async def bind(self, binding: Binding) -> None:
        self._relay.call("bind", binding)

    async def delete_queue(self, name: str) -> None:
        self._relay.call("delete_queue", name)

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        self._relay.call("publish", envelope, mandatory=mandatory)

    async def purge(self, queue: str) -> int:
        return int(self._relay.call("purge", queue))

    async def message_count(self, queue: str) -> int:
        return int(self._relay.call("message_count", queue))

    async def consumer_count(self, queue: str) -> int:
        return int(self._relay.call("consumer_count", queue))

    async def consume(
        self,
        queue: str,
        handler: DeliveryHandler,
        *,
        prefetch: int,
        arguments: Mapping[str, Any] | None = None,
    ) -> Consumer:
        raise _consuming()

    async def ack(self, delivery: Delivery) -> None:
        raise _consuming()

    async def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        raise _consuming()

    async def get(self, queue: str) -> Delivery | None:
        raise _consuming()


def _consuming() -> NotSupportedError:
    return NotSupportedError(
        "consuming in a prefork child",
        "the worker process consumes; a task in a child may publish (delay, apply_async) "
        "but not consume or wait for an rpc result (Celery forbids result.get() in a task)",
    )


def serve_relay(connection: Connection, transport: Transport) -> None:
    """Serve the operations a child asks over `connection` on `transport`, from the running
    loop, until the child's end closes."""
    loop = asyncio.get_running_loop()
    fd = connection.fileno()

    def readable() -> None:
        try:
            operation, args, kwargs = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            loop.remove_reader(fd)
            return
        task = loop.create_task(_serve(connection, transport, operation, args, kwargs))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    loop.add_reader(fd, readable)


_pending: set[asyncio.Task[None]] = set()


async def _serve(
    connection: Connection,
    transport: Transport,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    reply: tuple[bool, Any]
    try:
        if operation not in FORWARDED:
            raise NotSupportedError(f"{operation!r} from a prefork child", "not forwarded")
        reply = (True, await getattr(transport, operation)(*args, **kwargs))
    except Exception as exc:
        portable = exc if round_trips(exc) else BrokerError(f"{operation} failed: {exc}")
        reply = (False, portable)
    try:
        connection.send_bytes(pickle.dumps(reply))
    except OSError:
        logger.debug("a prefork child went away before the answer to its %s", operation)


def round_trips(exc: BaseException) -> bool:
    """Whether `exc` survives pickling to another process and back (an exception whose
    `__init__` takes other arguments than its `args` pickles, then fails to unpickle)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True
