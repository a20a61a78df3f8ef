"""The app: the one long-lived object a user creates, holding tasks, settings and connections."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar, overload

from hare.clock import Clock, SystemClock
from hare.codec import get_serializer
from hare.errors import ConfigurationError, NotSupportedError, TaskNotRegistered
from hare.message import Message
from hare.portal import LoopPortal
from hare.publisher import Publisher
from hare.retry import RetryPolicy
from hare.settings import Settings
from hare.task import Sent, Task, TaskOptions, normalise_eta, task_name
from hare.topology import validate_queue_name
from hare.transport.base import Transport

__all__ = ("Hare",)

P = ParamSpec("P")
R = TypeVar("R")

#: `apply_async` / `send_task` options hare understands. Anything else raises
#: `NotSupportedError` rather than being silently ignored.
_SEND_OPTIONS = frozenset(
    {
        "queue",
        "task_id",
        "headers",
        "expires",
        "priority",
        "ignore_result",
        "shadow",
        "countdown",
        "eta",
        "time_limit",
        "soft_time_limit",
    }
)


class Hare:
    """A hare application.

    >>> app = Hare("shop", broker="memory://")
    >>> @app.task
    ... def add(x: int, y: int) -> int:
    ...     return x + y
    >>> add(2, 3)
    5
    """

    def __init__(
        self,
        main: str = "",
        *,
        broker: str | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.main = main
        self.settings = Settings.resolve(
            {"broker_url": broker, **settings}, os.environ if environ is None else environ
        )
        self.clock: Clock = clock or SystemClock()
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._memory_broker: Any = None
        self._publishers: dict[asyncio.AbstractEventLoop, Publisher] = {}
        self._home: tuple[LoopPortal, Publisher] | None = None
        self._portal_lock = threading.Lock()
        self._content_type = get_serializer(self.settings.serializer).content_type
        self._hooks: dict[str, list[Callable[[], Any]]] = {"startup": [], "shutdown": []}

    def __repr__(self) -> str:
        return f"<Hare {self.main or '?'} broker={_mask(self.settings.broker_url)}>"

    # -- registering tasks -------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retries: int | None = 3,
        default_retry_delay: float = 180.0,
        retry_backoff: bool | float = False,
        retry_backoff_max: float = 600.0,
        retry_jitter: bool = True,
        autoretry_for: tuple[type[BaseException], ...] = (),
        dont_autoretry_for: tuple[type[BaseException], ...] = (),
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        isolation: Literal["thread", "process"] = "thread",
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retries: int | None = 3,
        default_retry_delay: float = 180.0,
        retry_backoff: bool | float = False,
        retry_backoff_max: float = 600.0,
        retry_jitter: bool = True,
        autoretry_for: tuple[type[BaseException], ...] = (),
        dont_autoretry_for: tuple[type[BaseException], ...] = (),
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        isolation: Literal["thread", "process"] = "thread",
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: `@app.task` or `@app.task(queue="emails", ...)`.

        Retry options mean what they mean in Celery: only exceptions in `autoretry_for` are
        retried automatically (with `retry_backoff`, exponentially); `raise Retry(...)` asks
        for a retry explicitly; past `max_retries` the message is dead-lettered.
        """
        policy = RetryPolicy(
            max_retries=max_retries,
            default_retry_delay=default_retry_delay,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            retry_jitter=retry_jitter,
            autoretry_for=tuple(autoretry_for),
            dont_autoretry_for=tuple(dont_autoretry_for),
        )

        def register(fn: Callable[P, R]) -> Task[P, R]:
            if queue is not None:
                validate_queue_name(queue)
            options = TaskOptions(
                name=name or task_name(fn, self.main),
                queue=queue,
                retry=policy,
                time_limit=_limit("time_limit", time_limit),
                soft_time_limit=_limit("soft_time_limit", soft_time_limit),
                isolation=isolation,
            )
            if isolation not in ("thread", "process"):
                raise ConfigurationError(
                    f"isolation must be 'thread' or 'process', not {isolation!r}"
                )
            if isolation == "process" and inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    f"task {options.name}: isolation='process' is for sync functions; an async "
                    "task is cancelled at its hard time limit already"
                )
            if options.name in self.tasks and self.tasks[options.name].fn is not fn:
                raise ConfigurationError(f"two different tasks are named {options.name!r}")
            task: Task[P, R] = Task(self, fn, options)
            self.tasks[options.name] = task
            return task

        return register(fn) if fn is not None else register

    # -- worker life cycle -------------------------------------------------------------------

    def on_startup(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run `fn` (sync or async) in each worker before it starts consuming."""
        self._hooks["startup"].append(fn)
        return fn

    def on_shutdown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run `fn` (sync or async) in each worker after it drained, before it disconnects."""
        self._hooks["shutdown"].append(fn)
        return fn

    async def run_hooks(self, which: str) -> None:
        """Run the `startup` or `shutdown` hooks in the order they were registered."""
        for hook in self._hooks[which]:
            result = hook()
            if inspect.isawaitable(result):
                await result

    # -- sending -----------------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent:
        """Send a task by name from synchronous code, without importing it."""
        queue, message = self.build_message(name, args, kwargs, options)
        portal, publisher = self._home_portal()
        portal.call(publisher.send(queue, message))
        return Sent(id=message.id, task=name, queue=queue)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent:
        """Send a task by name from async code."""
        queue, message = self.build_message(name, args, kwargs, options)
        publisher = await self.publisher()
        await publisher.send(queue, message)
        return Sent(id=message.id, task=name, queue=queue)

    def build_message(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any],
    ) -> tuple[str, Message]:
        """Turn a call into the message that carries it, and the queue it goes to."""
        for option in options:
            if option not in _SEND_OPTIONS:
                raise NotSupportedError(option, "not an option hare's send_task understands")
        countdown, eta = options.get("countdown"), options.get("eta")
        if countdown is not None and eta is not None:
            raise ConfigurationError("give countdown= or eta=, not both")
        if args is not None and not isinstance(args, list | tuple):
            raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a mapping, not {type(kwargs).__name__}")
        task = self.tasks.get(name)
        queue = options.get("queue") or (task.queue if task else self.settings.default_queue)
        validate_queue_name(queue)
        task_id = options.get("task_id") or str(uuid.uuid4())
        return queue, Message(
            id=task_id,
            task=name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            eta=self._absolute(countdown if countdown is not None else eta),
            expires=self._absolute(options.get("expires")),
            root_id=task_id,
            shadow=options.get("shadow"),
            timelimit=(
                _limit("time_limit", options.get("time_limit")),
                _limit("soft_time_limit", options.get("soft_time_limit")),
            ),
            origin=self.origin,
            ignore_result=options.get("ignore_result", False),
            priority=options.get("priority"),
            headers=dict(options.get("headers") or {}),
            content_type=self._content_type,
        )

    def _absolute(self, when: float | datetime | timedelta | None) -> datetime | None:
        if when is None:
            return None
        if isinstance(when, datetime):
            return normalise_eta(when)
        seconds = when.total_seconds() if isinstance(when, timedelta) else float(when)
        return datetime.fromtimestamp(self.clock.time() + seconds, UTC)

    # -- connections -------------------------------------------------------------------------

    def make_transport(self) -> Transport:
        """A new, unconnected transport for the configured broker."""
        url = self.settings.broker_url
        if url.startswith("memory://"):
            from hare.transport.memory import MemoryBroker, MemoryTransport

            if self._memory_broker is None:
                self._memory_broker = MemoryBroker()
            return MemoryTransport(self._memory_broker, clock=self.clock)
        if url.startswith(("amqp://", "amqps://")):
            from hare.transport.amqp import AmqpTransport

            return AmqpTransport(
                [part.strip() for part in url.split(";") if part.strip()],
                connect_timeout=self.settings.connect_timeout,
                publish_timeout=self.settings.publish_timeout,
                heartbeat=self.settings.heartbeat,
                name=f"hare {self.main} {self.origin}",
            )
        raise ConfigurationError(f"unsupported broker URL {_mask(url)!r} (amqp://, memory://)")

    async def publisher(self) -> Publisher:
        """The publisher for the running event loop, connected on first use."""
        loop = asyncio.get_running_loop()
        if self._home is not None and self._home[0].loop is loop:
            return self._home[1]
        publisher = self._publishers.get(loop)
        if publisher is None:
            transport = self.make_transport()
            await transport.connect()
            publisher = self._publishers.setdefault(
                loop, Publisher(transport, self.settings, self.clock)
            )
            if publisher.transport is not transport:
                await transport.close()
        return publisher

    def bind_loop(self, loop: asyncio.AbstractEventLoop, publisher: Publisher) -> None:
        """Make a running worker's loop and connection serve `delay()` calls of this process."""
        self._home = (LoopPortal(loop, None), publisher)

    def unbind_loop(self) -> None:
        self._home = None

    def _home_portal(self) -> tuple[LoopPortal, Publisher]:
        home = self._home
        if home is not None and home[0].is_usable:
            return home
        with self._portal_lock:
            home = self._home
            if home is not None and home[0].is_usable:
                return home
            portal = LoopPortal.start(self.main or "app")

            async def connect() -> Publisher:
                return await self.publisher()

            try:
                publisher = portal.call(connect())
            except BaseException:
                portal.stop()
                raise
            self._home = (portal, publisher)
            return self._home

    async def aclose(self) -> None:
        """Close the connections this app opened on the running loop."""
        publisher = self._publishers.pop(asyncio.get_running_loop(), None)
        if publisher is not None:
            await publisher.transport.close()

    def close(self) -> None:
        """Close the private publishing loop that `delay()` started, if any."""
        home, self._home = self._home, None
        if home is None:
            return
        portal, publisher = home
        if portal.loop in self._publishers:
            del self._publishers[portal.loop]
            portal.stop(publisher.transport.close())


def _limit(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
    return value


def _mask(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = []
    for one in url.split(";"):
        split = urlsplit(one.strip())
        if split.password:
            netloc = split.netloc.replace(":" + split.password + "@", ":***@", 1)
            one = urlunsplit(split._replace(netloc=netloc))
        parts.append(one)
    return ";".join(parts)


def lookup_task(app: Hare, name: str) -> Task[Any, Any]:
    """The task registered under `name`, or `TaskNotRegistered`."""
    try:
        return app.tasks[name]
    except KeyError:
        raise TaskNotRegistered(name) from None
