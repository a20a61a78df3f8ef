"""Task: a function registered with an app, callable locally or sent to a worker."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, Protocol, TypeVar, final

from hare.core.calls import positive_seconds
from hare.core.priority import check_priority
from hare.core.retry import RetryPolicy
from hare.core.topology import validate_queue_name
from hare.errors import ConfigurationError
from hare.results.handle import AsyncResult, ResultSource

if TYPE_CHECKING:
    from hare.core.settings import Settings
    from hare.middleware import Middlewares

__all__ = ("DEFAULT_WINDOW", "Call", "Sender", "Sent", "Task", "TaskOptions")


class Sender(ResultSource, Protocol):
    """What a task needs of its app: settings and sending by name (`hare.Hare` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def middleware(self) -> Middlewares: ...

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent: ...

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent: ...

    def enqueue_many(
        self, calls: Iterable[Call], *, window: int = ...
    ) -> list[Sent | Exception]: ...

    async def aenqueue_many(
        self, calls: Iterable[Call], *, window: int = ...
    ) -> list[Sent | Exception]: ...


P = ParamSpec("P")
R = TypeVar("R")


#: `@app.task(...)` keywords that make the task's `RetryPolicy`, and the others it takes.
_RETRY_KEYWORDS = frozenset(
    {
        "max_retries",
        "default_retry_delay",
        "retry_backoff",
        "retry_backoff_max",
        "retry_jitter",
        "autoretry_for",
        "dont_autoretry_for",
    }
)
_TASK_KEYWORDS = frozenset(
    {
        "name",
        "queue",
        "time_limit",
        "soft_time_limit",
        "isolation",
        "reject_on_worker_lost",
        "retry_on_worker_lost",
        "priority",
    }
)
#: `@app.task(pool=...)`, Celery's pool names for `isolation`.
_POOLS = {"prefork": "process", "processes": "process", "threads": "thread"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOptions:
    """How a task is named, routed and run; checked when made (`ConfigurationError`)."""

    name: str
    #: The queue its messages go to; `None` means the app's default queue.
    queue: str | None = None
    retry: RetryPolicy = RetryPolicy()
    #: Hard and soft time limits in seconds (`None`: none); a call may override them.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    #: Where a sync task runs: `None` in the worker's pool (`hare worker --pool`), "thread"
    #: in the worker's threads, "process" in a child of its process pool (which a soft limit
    #: interrupts and a hard limit kills; see `hare.worker.prefork`), whatever the pool.
    isolation: Literal["thread", "process"] | None = None
    #: When the process running the task dies (a child killed, `os._exit`, a segfault):
    #: retry it (by its retry policy), or put its message back on the queue (`reject`), as
    #: Celery's `retry_on_worker_lost` (which wins) and `reject_on_worker_lost`; neither: it
    #: fails with `WorkerLostError`.
    retry_on_worker_lost: bool = False
    reject_on_worker_lost: bool = False
    #: The priority (0-9, higher is more urgent) of a call that gives none; `None`: the
    #: app's `default_priority`.
    priority: int | None = None

    @classmethod
    def from_keywords(cls, name: str, keywords: Mapping[str, Any]) -> TaskOptions:
        """`@app.task(...)`'s keywords as options (the retry ones make its `RetryPolicy`)."""
        keywords = _with_isolation(name, keywords)
        unknown = set(keywords) - _RETRY_KEYWORDS - _TASK_KEYWORDS
        if unknown:
            raise ConfigurationError(f"task {name}: unknown option(s) {', '.join(sorted(unknown))}")
        retry = {k: v for k, v in keywords.items() if k in _RETRY_KEYWORDS}
        for key in ("autoretry_for", "dont_autoretry_for"):
            if key in retry:
                retry[key] = tuple(retry[key])
        task = {k: v for k, v in keywords.items() if k in _TASK_KEYWORDS and k != "name"}
        return cls(name=name, retry=RetryPolicy(**retry), **task)

    def __post_init__(self) -> None:
        if self.queue is not None:
            validate_queue_name(self.queue)
        positive_seconds("time_limit", self.time_limit, self.name)
        positive_seconds("soft_time_limit", self.soft_time_limit, self.name)
        check_priority(self.priority, self.name)
        if self.isolation not in (None, "thread", "process"):
            raise ConfigurationError(
                f"isolation must be 'thread' or 'process', not {self.isolation!r}"
            )


def _with_isolation(name: str, keywords: Mapping[str, Any]) -> Mapping[str, Any]:
    """`pool=` (Celery's pool names, per task) as the `isolation` it means."""
    if "pool" not in keywords:
        return keywords
    rest = dict(keywords)
    pool = rest.pop("pool")
    if pool is None:
        return rest
    isolation = _POOLS.get(pool) if isinstance(pool, str) else None
    if isolation is None:
        raise ConfigurationError(
            f"task {name}: pool must be 'prefork' or 'threads', not {pool!r} (a task runs in "
            "the worker's processes or its threads; solo is the whole worker's choice)"
        )
    if rest.get("isolation", isolation) != isolation:
        raise ConfigurationError(
            f"task {name}: pool={pool!r} and isolation={rest['isolation']!r} disagree"
        )
    rest["isolation"] = isolation
    return rest


#: How many messages a batch (`Hare.enqueue_many`) keeps published and unconfirmed at once,
#: unless told.
DEFAULT_WINDOW = 256


@dataclass(frozen=True, slots=True)
class Call:
    """One call to send in a batch: a task's name, its arguments and `send_task`'s
    options (`queue=`, `countdown=`, `priority=`, ...). `Task.call(*args, **kwargs)` makes one
    with the task's own queue and priority."""

    task: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def using(self, **options: Any) -> Call:
        """This call with `options` added (`add.call(2, 3).using(countdown=10)`)."""
        return replace(self, options={**self.options, **options})


@final
class Sent(AsyncResult):
    """What `delay()` returns: the broker has confirmed the message.

    It is also the handle on the task's result (`.get(timeout=)`, `await sent`, `.state`)
    when the app has a `result_backend`; without one those raise `ResultsDisabled`.
    """

    def __init__(self, *, id: str, task: str, queue: str, app: ResultSource) -> None:
        super().__init__(id, app)
        self.task = task
        self.queue = queue

    def __repr__(self) -> str:
        return f"<Sent {self.task}[{self.id}] to {self.queue}>"


@final
class Task(Generic[P, R]):
    """A registered task. Call it to run it here; `delay()` to run it on a worker."""

    def __init__(self, app: Sender, fn: Callable[P, R], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = options.name
        self.is_async = inspect.iscoroutinefunction(fn)
        if options.isolation == "process" and self.is_async:
            raise ConfigurationError(
                f"task {self.name}: isolation='process' is for sync functions; an async "
                "task is cancelled at its hard time limit already"
            )
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        #: What signals name as their `sender` (hare_compat sets its Celery-style task here).
        self.sender: Any = self
        #: Whether a worker stores `STARTED` before running it; `None`: the app's
        #: `track_started` setting.
        self.track_started: bool | None = None
        #: Exceptions the task is expected to raise: logged at INFO, without a traceback.
        self.throws: tuple[type[BaseException], ...] = ()
        #: Never store this task's result, whatever its messages say (Celery's `ignore_result`
        #: on the task: a message sent by name without the option still has it ignored).
        self.ignore_result = False
        #: Called by the worker after the `task_success` / `task_failure` / `task_retry`
        #: signal and before `task_postrun`, with the state and the value (or exception), in
        #: the context that ran the task; an async task's may return an awaitable (awaited).
        #: hare_compat runs Celery's `after_return` here, in Celery's place.
        self.after_signal: Callable[[str, Any], Any] | None = None
        #: The function whose parameters decide how this task is called as an errback
        #: (Celery's `__header__`): when it takes more than the failed task's id, the worker
        #: calls it with `(request, exc, traceback)`; otherwise, or when None, it is sent the
        #: failed task's id. hare_compat sets the user's function here (None for bound and
        #: class-based tasks, as Celery), since `fn` is then its own wrapper.
        self.errback_header: Callable[..., Any] | None = fn

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no broker involved), as Celery does."""
        return self.fn(*args, **kwargs)

    @property
    def _defaults(self) -> dict[str, Any]:
        priority = self.options.priority
        return {} if priority is None else {"priority": priority}

    @property
    def queue(self) -> str:
        return self.options.queue or self.app.settings.default_queue

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """This task's call for a batch (`app.enqueue_many`), with its queue and priority;
        `.using(countdown=...)` adds options."""
        return Call(self.name, args, kwargs, {"queue": self.queue, **self._defaults})

    def delay_many(
        self, arguments: Iterable[Sequence[Any]], *, window: int = DEFAULT_WINDOW
    ) -> list[Sent | Exception]:
        """`delay()` once per item of `arguments` (each a call's positional arguments), as one
        batch (`app.enqueue_many`): one outcome per call, in order, the `Sent` or the error."""
        calls = [self.call(*args) for args in arguments]  # type: ignore[call-arg]
        return self.app.enqueue_many(calls, window=window)

    async def adelay_many(
        self, arguments: Iterable[Sequence[Any]], *, window: int = DEFAULT_WINDOW
    ) -> list[Sent | Exception]:
        """`delay_many` for async code (`app.aenqueue_many`)."""
        calls = [self.call(*args) for args in arguments]  # type: ignore[call-arg]
        return await self.app.aenqueue_many(calls, window=window)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Sent:
        """Send a call to a worker from synchronous code; returns once the broker confirmed it."""
        return self.app.send_task(self.name, args, kwargs, queue=self.queue, **self._defaults)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Sent:
        """Send a call to a worker from async code; returns once the broker confirmed it."""
        return await self.app.asend_task(
            self.name, args, kwargs, queue=self.queue, **self._defaults
        )

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent:
        """Send a call with options (Celery's signature): queue=, task_id=, headers=, expires=..."""
        options.setdefault("queue", self.queue)
        _default_priority(options, self.options.priority)
        return self.app.send_task(self.name, args, kwargs, **options)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Sent:
        """`apply_async` for async code."""
        options.setdefault("queue", self.queue)
        _default_priority(options, self.options.priority)
        return await self.app.asend_task(self.name, args, kwargs, **options)


def _default_priority(options: dict[str, Any], priority: int | None) -> None:
    if priority is not None and options.get("priority") is None:
        options["priority"] = priority


def task_name(fn: Callable[..., Any], app_main: str) -> str:
    """Celery's default name: `module.function`, with the app's name for `__main__`."""
    module = fn.__module__
    if module == "__main__":
        module = app_main
    qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", None))
    if not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigurationError(
            f"cannot derive a task name for {fn!r}: define it at module level or pass name="
        )
    return f"{module}.{qualname}"
