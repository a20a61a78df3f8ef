"""An app's connections: one publishing connection per event loop, and the sync bridge.

* `publisher()` gives async code a connection on its own loop, opened on first use.
* A running worker binds its loop and connection (`bind_loop`), so `delay()` from the worker's
  sync tasks and `await adelay()` from its async tasks publish through the worker's connection.
* `home_portal()` serves sync `delay()`: the worker's loop when one runs in this process, else
  a private loop in a daemon thread, started on first use and shared by every thread.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Callable

from hare.clock import Clock
from hare.core.settings import Settings, mask_url
from hare.errors import ConfigurationError
from hare.middleware import Middlewares
from hare.portal import LoopPortal
from hare.publisher import Publisher
from hare.transport.base import Transport

__all__ = ("Connections",)


class Connections:
    """The connections one app opens, by event loop."""

    def __init__(
        self, settings: Settings, clock: Clock, name: str, middleware: Middlewares | None = None
    ) -> None:
        self._settings = settings
        self._middleware = middleware if middleware is not None else Middlewares()
        self._clock = clock
        self._name = name
        self._memory_broker: object | None = None
        self._publishers: dict[asyncio.AbstractEventLoop, Publisher] = {}
        # First connections in progress: concurrent first publishes on a loop share one.
        self._connecting: dict[asyncio.AbstractEventLoop, asyncio.Task[Publisher]] = {}
        self._home: tuple[LoopPortal, Publisher] | None = None
        self._portal_lock = threading.Lock()
        self._forward: Callable[[], Transport] | None = None

    def forward_to(self, make_transport: Callable[[], Transport]) -> None:
        """Open every connection with `make_transport()` from now on, and forget those this
        process inherited: in a prefork child, whose parent owns the broker connection, the
        copies of the parent's loops and connections are not usable."""
        self._forward = make_transport
        self._publishers = {}
        self._connecting = {}
        self._home = None
        self._portal_lock = threading.Lock()

    def make_transport(self) -> Transport:
        """A new, unconnected transport for the configured broker."""
        if self._forward is not None:
            return self._forward()
        url = self._settings.broker_url
        if url.startswith("memory://"):
            from hare.transport.memory.transport import MemoryBroker, MemoryTransport

            if not isinstance(self._memory_broker, MemoryBroker):
                self._memory_broker = MemoryBroker()
            return MemoryTransport(
                self._memory_broker,
                clock=self._clock,
                max_message_size=self._settings.max_message_size,
            )
        if url.startswith(("amqp://", "amqps://")):
            from hare.transport.amqp.transport import AmqpTransport

            return AmqpTransport(
                [part.strip() for part in url.split(";") if part.strip()],
                connect_timeout=self._settings.connect_timeout,
                publish_timeout=self._settings.publish_timeout,
                heartbeat=self._settings.heartbeat,
                name=f"hare {self._name}",
                max_message_size=self._settings.max_message_size,
            )
        raise ConfigurationError(f"unsupported broker URL {mask_url(url)!r} (amqp://, memory://)")

    async def publisher(self) -> Publisher:
        """The publisher for the running event loop, connected on first use."""
        loop = asyncio.get_running_loop()
        if self._home is not None and self._home[0].loop is loop:
            return self._home[1]
        publisher = self._publishers.get(loop)
        if publisher is not None:
            return publisher
        # One connection however many callers arrive before it is up (a burst of 1,000
        # `adelay()` calls at start-up opened 1,000 connections and ran the broker out of file
        # descriptors). A task of its own, so one caller's cancellation stops no other.
        connecting = self._connecting.get(loop)
        if connecting is None:
            connecting = self._connecting[loop] = loop.create_task(self._connect(loop))
            connecting.add_done_callback(_retrieve)  # every caller may have been cancelled
        return await asyncio.shield(connecting)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Publisher:
        try:
            transport = self.make_transport()
            await transport.connect()
            publisher = self._publishers[loop] = Publisher(
                transport, self._settings, self._clock, self._middleware
            )
            return publisher
        finally:
            del self._connecting[loop]

    def bind_loop(self, loop: asyncio.AbstractEventLoop, publisher: Publisher) -> None:
        self._home = (LoopPortal(loop, None), publisher)

    def unbind_loop(self) -> None:
        self._home = None

    def home_portal(self) -> tuple[LoopPortal, Publisher]:
        """The loop and publisher that serve sync `delay()` calls, started if need be."""
        home = self._home
        if home is not None and home[0].is_usable:
            return home
        with self._portal_lock:
            home = self._home
            if home is not None and home[0].is_usable:
                return home
            portal = LoopPortal.start(self._name)
            try:
                publisher = portal.call(self.publisher())
            except BaseException:
                portal.stop()
                raise
            self._home = (portal, publisher)
            # At exit, close the connection before the portal stops its loop (atexit runs
            # the later registration first): the broker then sees a clean connection.close.
            atexit.register(self._close_at_exit, portal)
            return self._home

    async def aclose(self) -> None:
        """Close the connection opened on the running loop."""
        publisher = self._publishers.pop(asyncio.get_running_loop(), None)
        if publisher is not None:
            await publisher.transport.close()

    def _close_at_exit(self, portal: LoopPortal) -> None:
        home = self._home
        if home is not None and home[0] is portal:
            self.close()

    def close(self) -> None:
        """Close the private publishing loop that `delay()` started, if any."""
        home, self._home = self._home, None
        if home is None:
            return
        portal, publisher = home
        if portal.loop in self._publishers:
            del self._publishers[portal.loop]
            portal.stop(publisher.transport.close())


def _retrieve(task: asyncio.Task[Publisher]) -> None:
    if not task.cancelled():
        task.exception()
