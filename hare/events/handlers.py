"""The event handlers of one app, by queue, and `Event[T]`: a typed name to emit and handle.

A handler is a task under the hood: `@app.on("order.paid", max_retries=5)` registers a task
(retries, time limits, dead letters, signals as any task), routed to a queue of its own,
`hare.ev.<app>.<task name>` unless `queue=` names another. The function registered is a thin
wrapper that checks the payload against the handler's annotation (`hare.events.payload`) and
converts it (a dataclass built from its JSON object) before calling the handler.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from hare.errors import ConfigurationError
from hare.events.names import handler_queue_name, validate_event_name, validate_pattern
from hare.events.payload import load, payload_annotation
from hare.task import Task, task_name

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from hare.core.settings import Settings

__all__ = ("Emitted", "Event", "EventSource", "Events", "Handler", "TaskRegistry")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Emitted:
    """What `emit` returns: the broker confirmed the event (it is with every handler queue
    bound for it, or parked as unhandled)."""

    id: str
    event: str


@dataclass(frozen=True, slots=True)
class Handler:
    """One handler: the patterns it binds with, its queue, its task, its payload type."""

    patterns: tuple[str, ...]
    queue: str
    task: Task[Any, Any]
    #: The annotation of the handler's payload parameter (`Any`: not checked).
    annotation: Any


class TaskRegistry(Protocol):
    """What registering a handler needs of its app (`hare.Hare` is one)."""

    main: str

    @property
    def task(self) -> Callable[..., Any]:
        """`Hare.task`: `task(**options)(fn)` registers `fn`."""

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """The app's tasks by name."""

    @property
    def settings(self) -> Settings:
        """The app's settings (its default queue)."""


class Events:
    """The handlers of one app, by queue (a queue has one handler)."""

    def __init__(self) -> None:
        self._by_queue: dict[str, Handler] = {}

    def __len__(self) -> int:
        return len(self._by_queue)

    def __iter__(self) -> Iterator[str]:
        """The handler queues, in registration order."""
        return iter(self._by_queue)

    def handlers(self) -> list[Handler]:
        return list(self._by_queue.values())

    def queues(self) -> list[str]:
        """The handler queues, in registration order."""
        return list(self._by_queue)

    def handler_for(self, queue: str) -> Handler | None:
        """The handler whose queue `queue` is, if any."""
        return self._by_queue.get(queue)

    def register(
        self, app: TaskRegistry, patterns: tuple[str, ...], fn: Callable[..., Any], options: Any
    ) -> Task[Any, Any]:
        """Register `fn` as the handler of `patterns` in `app`, with `@app.task`'s `options`.
        Raises `ConfigurationError` (`InvalidEventName` for a bad pattern)."""
        if not patterns:
            raise ConfigurationError("@app.on needs at least one event name or pattern")
        checked = tuple(dict.fromkeys(validate_pattern(p) for p in patterns))
        annotation = payload_annotation(fn)
        name = options.get("name") or task_name(fn, app.main)
        queue = options.get("queue") or handler_queue_name(app.main, name)
        if queue in self._by_queue:
            raise ConfigurationError(f"two event handlers use queue {queue!r}; give one queue=")
        _refuse_task_queue(app, queue)
        task: Task[Any, Any] = app.task(**{**options, "name": name, "queue": queue})(
            _checking(fn, annotation)
        )
        task.ignore_result = True  # every handler of an event shares its id's root
        self._by_queue[queue] = Handler(checked, queue, task, annotation)
        return task


def _refuse_task_queue(app: TaskRegistry, queue: str) -> None:
    """A handler's queue is its own: one that tasks are routed to would mix the two."""
    taken = {task.options.queue for task in app.tasks.values()} | {app.settings.default_queue}
    if queue in taken:
        raise ConfigurationError(
            f"event handler queue {queue!r} is a task queue of the app; a handler needs a queue "
            "of its own (leave queue= out for hare.ev.<app>.<name>)"
        )


def _checking(fn: Callable[..., Any], annotation: Any) -> Callable[..., Any]:
    """`fn` behind a check and conversion of its payload."""
    if inspect.iscoroutinefunction(fn):

        async def handle_async(payload: Any) -> Any:
            return await fn(load(annotation, payload))

        return functools.update_wrapper(handle_async, fn)

    def handle(payload: Any) -> Any:
        return fn(load(annotation, payload))

    return functools.update_wrapper(handle, fn)


class EventSource(Protocol):
    """What `Event` needs of its app (`hare.Hare` is one)."""

    def on(
        self, pattern: str, /, *patterns: str, **options: Any
    ) -> Callable[[Callable[[Any], Any]], Task[Any, Any]]: ...

    def emit(self, event: str, payload: Any = None) -> Emitted: ...

    def aemit(self, event: str, payload: Any = None) -> Awaitable[Emitted]: ...


class Event(Generic[T]):
    """A named event whose payload is a `T`: `paid = app.event("order.paid", Payment)`.

    `paid.emit(Payment(...))` and `@paid.handler` are checked by mypy against `T`; the worker
    checks the payload against the handler's own annotation."""

    def __init__(self, app: EventSource, name: str, payload: type[T]) -> None:
        self.app = app
        self.name = validate_event_name(name)
        self.payload = payload

    def __repr__(self) -> str:
        return f"<Event {self.name} of {getattr(self.payload, '__name__', self.payload)}>"

    @overload
    def handler(self, fn: Callable[[T], R], /) -> Task[[T], R]: ...

    @overload
    def handler(self, /, **options: Any) -> Callable[[Callable[[T], R]], Task[[T], R]]: ...

    def handler(
        self, fn: Callable[[T], R] | None = None, /, **options: Any
    ) -> Task[[T], R] | Callable[[Callable[[T], R]], Task[[T], R]]:
        """Register a handler of this event: `@paid.handler` or `@paid.handler(max_retries=5)`."""

        def register(fn: Callable[[T], R]) -> Task[[T], R]:
            return self.app.on(self.name, **options)(fn)

        return register(fn) if fn is not None else register

    def emit(self, payload: T) -> Emitted:
        """Publish this event from sync code; returns once the broker confirmed it."""
        return self.app.emit(self.name, payload)

    async def aemit(self, payload: T) -> Emitted:
        """Publish this event from async code."""
        return await self.app.aemit(self.name, payload)
