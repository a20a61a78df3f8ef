"""The app: the one long-lived object a user creates, holding tasks, settings and connections."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from hare import batch
from hare.batch import DEFAULT_WINDOW, Outcome
from hare.clock import Clock, SystemClock
from hare.connections import Connections
from hare.context import current
from hare.core import calls
from hare.core.calls import Env
from hare.core.codec import get_serializer
from hare.core.message import Message
from hare.core.settings import Settings, mask_url
from hare.core.topology import validate_queue_name
from hare.errors import ConfigurationError, ResultsDisabled
from hare.events.emitting import publish_event
from hare.events.handlers import Emitted, Event, Events
from hare.events.message import event_message
from hare.http.task import UNSET, HttpTask, Pushes
from hare.middleware import Middlewares
from hare.periodic.schedules import Periodic
from hare.publisher import Publisher
from hare.results.store import Results
from hare.task import Call, Sent, Task, TaskOptions, task_name
from hare.transport.base import Transport

if TYPE_CHECKING:
    from hare.canvas.continuation import Plan
    from hare.periodic.schedules import Schedule

__all__ = ("HARE_LOGGERS", "Hare", "as_hare")

#: The loggers a hare app's worker logs its task lines on: (received, ran); see
#: `hare.worker.tracelog`. A hare_compat app uses Celery's.
HARE_LOGGERS = ("hare.worker.received", "hare.trace")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
#: A remote-control command of the app's own (`Hare.control_command`).
Command = TypeVar("Command", bound=Callable[..., Any])


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
        middleware: Sequence[object] = (),
        **settings: Any,
    ) -> None:
        self.main = main
        #: Hooks around every publish, run and worker life (`hare.middleware`).
        self.middleware = Middlewares(middleware)
        self.settings = Settings.resolve(
            {"broker_url": broker, **settings}, os.environ if environ is None else environ
        )
        self.clock: Clock = clock or SystemClock()
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self.connections = Connections(
            self.settings, self.clock, f"{main or 'app'} {self.origin}", self.middleware
        )
        #: The content type of the messages this app sends (its serializer's).
        self.content_type = get_serializer(self.settings.serializer).content_type
        self._accept = calls.accepted(self.settings.accept_content)
        self._hooks: dict[str, list[Callable[[], Any]]] = {"startup": [], "shutdown": []}
        self.periodics: dict[str, Periodic] = {}
        #: The event handlers, by queue (see `on` and `hare.events`).
        self.events = Events()
        #: Remote-control commands of the app's own, by name (see `control_command`).
        self.control_commands: dict[str, Callable[..., Any]] = {}
        #: Asked first for the queue of a task sent without `queue=` (see `route`).
        self.router: Callable[[str], str | None] | None = None
        #: The loggers of the worker's task lines, (received, ran): see `hare.worker.tracelog`.
        self.trace_loggers: tuple[str, str] = HARE_LOGGERS
        #: Where results go (`result_backend`); `None` when results are off.
        self.results: Results | None = (
            Results(self.settings, self.connections, self.clock)
            if self.settings.result_backend
            else None
        )

    def __repr__(self) -> str:
        return f"<Hare {self.main or '?'} broker={mask_url(self.settings.broker_url)}>"

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
        isolation: Literal["thread", "process"] | None = None,
        pool: Literal["prefork", "threads"] | None = None,
        retry_on_worker_lost: bool = False,
        reject_on_worker_lost: bool = False,
        priority: int | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self, fn: Callable[P, R] | None = None, /, **options: Any
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: `@app.task` or `@app.task(queue="emails", ...)`.

        Retry options mean what they mean in Celery: only exceptions in `autoretry_for` are
        retried automatically (with `retry_backoff`, exponentially); `raise Retry(...)` asks
        for a retry explicitly; past `max_retries` the message is dead-lettered.
        """

        def register(fn: Callable[P, R]) -> Task[P, R]:
            name = options.get("name") or task_name(fn, self.main)
            task_options = TaskOptions.from_keywords(name, options)
            if name in self.tasks and self.tasks[name].fn is not fn:
                raise ConfigurationError(f"two different tasks are named {name!r}")
            task: Task[P, R] = Task(self, fn, task_options)
            self.tasks[name] = task
            return task

        return register(fn) if fn is not None else register

    @overload
    def control_command(self, fn: Command, *, name: str | None = None) -> Command: ...

    @overload
    def control_command(
        self, fn: None = None, *, name: str | None = None
    ) -> Callable[[Command], Command]: ...

    def control_command(
        self, fn: Command | None = None, *, name: str | None = None
    ) -> Command | Callable[[Command], Command]:
        """Register a remote-control command the app's workers answer (Celery's
        `celery.worker.control.control_command`): `fn(state, **arguments)`, where `state` has
        `app`, `hostname` and `worker`; what it returns is the reply. Reached with
        `app.control.broadcast(name, arguments=..., reply=True)` from hare or Celery."""

        def register(command: Command) -> Command:
            self.control_commands[name or command.__name__] = command
            return command

        return register(fn) if fn is not None else register

    # -- periodic tasks ----------------------------------------------------------------------

    def periodic(
        self,
        schedule: Schedule,
        *,
        name: str | None = None,
        queue: str | None = None,
        overlap: bool = True,
        catch_up: bool = False,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a task that runs on `schedule` (`every(...)`, `cron(...)`); no beat needed.

        `overlap=False` does not start an occurrence while the previous run still runs;
        `catch_up=True` runs the last occurrence missed while no worker ran (else skipped).
        """

        def register(fn: Callable[P, R]) -> Task[P, R]:
            task = self.task(name=name, queue=queue)(fn)
            self.add_periodic(
                task.name,
                schedule,
                task=task,
                args=args,
                kwargs=kwargs,
                queue=queue,
                overlap=overlap,
                catch_up=catch_up,
            )
            return task

        return register

    def add_periodic(
        self,
        name: str,
        schedule: Schedule,
        *,
        task: Task[Any, Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        overlap: bool = True,
        catch_up: bool = False,
        expires: float | None = None,
    ) -> None:
        """Add a schedule programmatically, as Celery's `add_periodic_task`.

        `expires`: seconds after its occurrence a run is dropped if it has not started.
        """
        task_name = task if isinstance(task, str) else task.name
        known = self.tasks.get(task_name)
        if name in self.periodics:
            raise ConfigurationError(f"two schedules are named {name!r}")
        self.periodics[name] = Periodic.checked(
            name,
            schedule,
            task=task_name,
            queue=queue or (known.queue if known else self.settings.default_queue),
            args=args,
            kwargs=kwargs,
            overlap=overlap,
            catch_up=catch_up,
            expires=expires,
        )

    # -- middleware --------------------------------------------------------------------------

    def add_middleware(self, *middleware: object) -> None:
        """Register middleware after what is registered (`hare.middleware`: hooks around every
        publish, every run and a worker's start and stop, in a documented order)."""
        for item in middleware:
            self.middleware.add(item)

    # -- events (see hare.events and docs/events.md) ---------------------------------------

    def on(
        self, pattern: str, /, *patterns: str, **options: Any
    ) -> Callable[[Callable[[T], R]], Task[[T], R]]:
        """Register an event handler: `@app.on("order.paid")`, `@app.on("order.*", "refund.#",
        max_retries=5)`. It takes the payload (checked against its annotation by the worker);
        options are `@app.task`'s; its queue is `hare.ev.<app>.<task name>` unless `queue=`."""
        return lambda fn: self.events.register(self, (pattern, *patterns), fn, options)

    def event(self, name: str, payload: type[T]) -> Event[T]:
        """A typed event: `paid = app.event("order.paid", Payment)`; `@paid.handler`,
        `paid.emit(payment)`, checked by mypy against `Payment`."""
        return Event(self, name, payload)

    def emit(self, event: str, payload: Any = None) -> Emitted:
        """Publish event `event` once, from sync code; returns once the broker confirmed it."""
        message = event_message(event, payload, self.call_env())
        portal, publisher = self.connections.home_portal()
        portal.call(publish_event(publisher, self.settings, self.clock, event, message))
        return Emitted(message.id, event)

    async def aemit(self, event: str, payload: Any = None) -> Emitted:
        """`emit` for async code."""
        message = event_message(event, payload, self.call_env())
        await publish_event(await self.publisher(), self.settings, self.clock, event, message)
        return Emitted(message.id, event)

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
        portal, publisher = self.connections.home_portal()
        portal.call(self._publish(publisher, queue, message))
        return Sent(id=message.id, task=name, queue=queue, app=self)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent:
        """Send a task by name from async code."""
        queue, message = self.build_message(name, args, kwargs, options)
        await self._publish(await self.publisher(), queue, message)
        return Sent(id=message.id, task=name, queue=queue, app=self)

    async def _publish(self, publisher: Publisher, queue: str, message: Message) -> None:
        if self.results is not None:
            await self.results.prepare(message)  # rpc: the reply queue exists and is consumed
        await publisher.send(queue, message)

    def enqueue_many(self, calls: Iterable[Call], *, window: int = DEFAULT_WINDOW) -> list[Outcome]:
        """Send many calls from sync code (`hare.batch`): one outcome per call, in order, the
        `Sent` handle or the exception for that message; it raises for none of them."""
        portal, publisher = self.connections.home_portal()
        return portal.call(batch.enqueue_many(self, publisher, list(calls), window))

    async def aenqueue_many(
        self, calls: Iterable[Call], *, window: int = DEFAULT_WINDOW
    ) -> list[Outcome]:
        """`enqueue_many` for async code: up to `window` messages unconfirmed at once."""
        return await batch.enqueue_many(self, await self.publisher(), list(calls), window)

    def send_plan(self, plan: Plan) -> None:
        """Send a workflow from sync code (see `hare.canvas`): its chords recorded, then each
        message."""
        portal, publisher = self.connections.home_portal()
        portal.call(self._send_plan(publisher, plan))

    async def asend_plan(self, plan: Plan) -> None:
        """`send_plan` for async code."""
        await self._send_plan(await self.publisher(), plan)

    async def _send_plan(self, publisher: Publisher, plan: Plan) -> None:
        if plan.chord_sizes or plan.chord_headers:
            if self.results is None:
                raise ResultsDisabled("chord")
            await self.results.record_chords(plan)
        outgoing = [(queue or self.route(message.task), message) for queue, message in plan.publish]
        if self.results is not None:
            for _, message in outgoing:
                await self.results.prepare(message)
        failures = await batch.send_many(self, publisher, outgoing)  # pipelined, in order
        failure = next((failure for failure in failures if failure is not None), None)
        if failure is not None:
            raise failure  # the first; the others are sent

    def build_message(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any],
    ) -> tuple[str, Message]:
        """The message that carries a call, and its queue (options: `hare.core.calls`)."""
        queue, message = calls.build_message(name, args, kwargs, options, self.call_env())
        return queue or validate_queue_name(self.route(name)), message

    def call_env(self) -> Env:
        """What building a message needs from this app now (`hare.core.calls.Env`); the
        running task, if any, is the parent of what it sends."""
        context = current()
        return Env(
            new_id=lambda: str(uuid.uuid4()),
            now=self.clock.time(),
            origin=self.origin,
            content_type=self.content_type,
            accept=self._accept,
            reply_to=self.results.reply_to if self.results is not None else None,
            current=context.message if context is not None else None,
            default_priority=self.settings.default_priority,
        )

    def route(self, name: str) -> str:
        """The queue a call of task `name` goes to when the caller names none.

        `router` (set by a front end such as hare_compat, for Celery's `task_routes`) is
        asked first, then the task's own `queue=`, then the app's default queue.
        """
        if self.router is not None:
            queue = self.router(name)
            if queue:
                return queue
        task = self.tasks.get(name)
        return task.queue if task is not None else self.settings.default_queue

    # -- HTTP push tasks (see hare.http) ------------------------------------------------------

    @functools.cached_property
    def http(self) -> Pushes:
        """This app's HTTP push tasks; the first use registers the task that delivers them."""
        return Pushes(self)

    def http_task(self, url: str, **options: Any) -> HttpTask:
        """A task that is a URL: `.delay(json=...)` makes a worker send it the request, and a
        2xx means done (options and outcomes: docs/http-tasks.md)."""
        return self.http.hook(url, **options)

    def push(self, url: str, *, method: str = "POST", json: Any = UNSET, **options: Any) -> Sent:
        """Send a one-off HTTP push from sync code (`data=`, `headers=`, `queue=`, ...)."""
        spec, rest = self.http.one_off(url, method, json, options.pop("data", None), options)
        return self.http.send(spec, rest)

    async def apush(
        self, url: str, *, method: str = "POST", json: Any = UNSET, **options: Any
    ) -> Sent:
        """`push` for async code."""
        spec, rest = self.http.one_off(url, method, json, options.pop("data", None), options)
        return await self.http.asend(spec, rest)

    # -- connections (see hare.connections) -------------------------------------------------

    def make_transport(self) -> Transport:
        """A new, unconnected transport for the configured broker."""
        return self.connections.make_transport()

    async def publisher(self) -> Publisher:
        """The publisher for the running event loop, connected on first use."""
        return await self.connections.publisher()

    async def aconnect(self) -> None:
        """Connect now rather than on the first `adelay()` (a web app's start-up)."""
        await self.connections.publisher()

    async def __aenter__(self) -> Hare:
        await self.aconnect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def bind_loop(self, loop: asyncio.AbstractEventLoop, publisher: Publisher) -> None:
        """Make a running worker's loop and connection serve `delay()` calls of this process."""
        self.connections.bind_loop(loop, publisher)

    def unbind_loop(self) -> None:
        self.connections.unbind_loop()

    async def aclose(self) -> None:
        """Close the connections this app opened on the running loop."""
        if self.results is not None:
            await self.results.aclose()
        await self.connections.aclose()

    def close(self) -> None:
        """Close the private publishing loop that `delay()` started, if any."""
        if self.results is not None:
            self.results.close()
        self.connections.close()


def as_hare(obj: object) -> Hare | None:
    """`obj` as a hare app: a `Hare`, or an object that makes one (`obj.__hare_app__()`).

    The second form is how other front ends (hare_compat's `Celery`) hand hare the app they
    configured, without hare knowing them.
    """
    if isinstance(obj, Hare):
        return obj
    make = getattr(type(obj), "__hare_app__", None)
    if make is None:
        return None
    app = make(obj)
    if not isinstance(app, Hare):
        raise ConfigurationError(f"{type(obj).__name__}.__hare_app__() did not return a hare app")
    return app
