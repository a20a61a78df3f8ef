"""Celery's `Task` over hare: the base class, its binding to an app, `self.request`, state.

`@app.task` makes a subclass of the app's `Task` per function (Celery's way,
`hare_compat.app.factory`), whose single instance is the task: `run` is the function,
`self.request` the running call. On the worker the hare task registered for it runs
`hare_compat.app.worker_entry.make_entry`'s wrapper, which builds the request from hare's
context, runs the hooks and turns `Retry` / `Reject` / `Ignore` into hare's signals.
`async def` tasks work alike: their wrapper is a coroutine function, so hare's worker runs
them on its loop. Calling (`delay`, `apply_async`, `apply`, `retry`:
`hare_compat.app.task_calling`), signatures and the other workflow methods
(`hare_compat.app.task_canvas`) and the handlers a subclass overrides
(`hare_compat.app.task_handlers`) are mixins of their own.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from hare.core.codec import get_serializer
from hare.errors import NotSupportedError
from hare_compat._state import current_request, pop_request, push_request
from hare_compat.app import eager
from hare_compat.app.configuration import conf_get
from hare_compat.app.request import Context
from hare_compat.app.task_calling import TaskCalling
from hare_compat.app.task_canvas import TaskCanvas
from hare_compat.app.task_handlers import TaskHandlers
from hare_compat.app.task_options import check_values
from hare_compat.app.worker_entry import after_signal, make_entry
from hare_compat.exceptions import (
    ImproperlyConfigured,
    MaxRetriesExceededError,
    OperationalError,
)
from hare_compat.exceptions import Retry as Retry  # Celery's celery.app.task has it too
from hare_compat.ratelimit import RateLimiter, parse_rate
from hare_compat.result import AsyncResult

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.task import Task as HareTask

__all__ = ("Context", "Task")

#: Celery's `from_config`: task attribute -> the setting that gives its default.
_FROM_CONFIG = (
    ("serializer", "task_serializer"),
    ("rate_limit", "task_default_rate_limit"),
    ("priority", "task_default_priority"),
    ("time_limit", "task_time_limit"),
    ("soft_time_limit", "task_soft_time_limit"),
    ("track_started", "task_track_started"),
    ("acks_late", "task_acks_late"),
    ("ignore_result", "task_ignore_result"),
    ("reject_on_worker_lost", "task_reject_on_worker_lost"),
    ("retry_on_worker_lost", "task_retry_on_worker_lost"),
)


class Task(TaskCalling, TaskCanvas, TaskHandlers):
    """Celery's task base class: subclass it (`base=`, `app.Task`) to add hooks or defaults."""

    MaxRetriesExceededError = MaxRetriesExceededError
    OperationalError = OperationalError

    _app: Any = None
    name: str | None = None
    typing: bool | None = None
    #: Set for `pydantic=True` tasks: dumps the caller's model arguments (`pydantic_args`).
    _dump_pydantic_arguments: Any = None
    max_retries: int | None = 3
    default_retry_delay: float = 3 * 60
    rate_limit: str | float | None = None
    ignore_result: bool | None = None
    trail = True
    send_events = True
    store_errors_even_if_ignored: bool | None = None
    serializer: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    track_started: bool | None = None
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    #: When the pool's child running the task dies: requeue its message (`reject`), or retry
    #: it as `self.retry` would (`retry`, which wins); neither: it fails with `WorkerLostError`.
    reject_on_worker_lost: bool | None = None
    retry_on_worker_lost: bool | None = None
    throws: tuple[type[BaseException], ...] = ()
    expires: float | datetime | None = None
    priority: int | None = None
    queue: str | None = None
    resultrepr_maxsize = 1024
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: int = 600
    retry_jitter: bool = True
    abstract = True
    from_config = _FROM_CONFIG
    __bound__ = False
    _default_request: Context | None = None
    _hare_task: HareTask[Any, Any] | None = None
    _entry: Callable[..., Any] | None = None
    #: Set by `bind_hare` when the task has a `rate_limit` (per worker process).
    _rate_limiter: RateLimiter | None = None

    @classmethod
    def __class_getitem__(cls, item: Any) -> types.GenericAlias:
        return types.GenericAlias(cls, item)

    # -- binding ----------------------------------------------------------------------------

    @classmethod
    def bind(cls, app: Any) -> Any:
        """Bind the class to `app`: defaults from its settings (Celery's `Task.bind`)."""
        if "__bound__" not in cls.__dict__:  # checked once per class, before the defaults
            check_values(_explicit(cls), cls.name or cls.__qualname__)
        cls.__bound__ = True
        cls._app = app
        if cls.typing is None:
            cls.typing = bool(getattr(app, "strict_typing", True))
        for attr, setting in cls.from_config:
            if getattr(cls, attr, None) is None:
                setattr(cls, attr, conf_get(app, setting))
        cls.on_bound(app)
        return app

    @classmethod
    def on_bound(cls, app: Any) -> None:
        """Called when the class is bound to an app (override to act on it)."""

    @classmethod
    def annotate(cls) -> None:
        """Celery applies `task_annotations` here; hare_compat refuses that setting (set the
        options on the task instead), so there is nothing to apply."""

    @classmethod
    def add_around(cls, attr: str, around: Callable[[Any], Any]) -> None:
        """Replace method `attr` by `around(original)` (Celery's annotation helper)."""
        original = getattr(cls, attr)
        original = getattr(original, "__wrapped__", None) or original
        method = around(original)
        method.__wrapped__ = original
        setattr(cls, attr, method)

    @classmethod
    def _get_app(cls) -> Any:
        if cls._app is None:
            raise ImproperlyConfigured(
                f"task {cls.name or cls.__name__} is not bound to an app: create it with "
                "@app.task / @shared_task, or register it with app.register_task"
            )
        return cls._app

    @property
    def app(self) -> Any:
        return self._get_app()

    @classmethod
    def _overrides(cls, attr: str) -> bool:
        """Whether this class overrides `attr` of hare_compat's base `Task`."""
        for klass in cls.__mro__:
            if klass is Task or klass is object:
                return False
            if attr in klass.__dict__:
                return True
        return False

    def bind_hare(self, hare_app: Hare) -> None:
        """Register this task's worker entry with the finalized hare app (once per app).

        The hare task never retries by itself (`max_retries=None`, no `autoretry_for`): the
        compat layer alone decides, through `self.retry`. Except when the pool child running
        it dies: then nothing of the task runs to decide, and with `retry_on_worker_lost` hare
        retries it by its policy, which then carries the task's `max_retries` and
        `default_retry_delay`, as Celery 5.7's worker applies them.
        """
        if self._hare_task is not None and self._hare_task.app is hare_app:
            return
        name = self.name
        if not name:
            raise ImproperlyConfigured(f"task class {type(self).__name__} has no name")
        wanted = self.serializer or hare_app.settings.serializer
        if get_serializer(wanted) is not get_serializer(hare_app.settings.serializer):
            raise NotSupportedError(
                f"serializer={wanted!r} on task {name}",
                f"hare uses the app's serializer ({hare_app.settings.serializer!r}) for every "
                "task: set task_serializer instead",
            )
        if self._entry is None:
            self._entry = make_entry(self)
        lost_retries = bool(self.retry_on_worker_lost)
        policy: dict[str, Any] = {"max_retries": None}
        if lost_retries:
            policy = {"max_retries": self.max_retries}
            policy["default_retry_delay"] = float(self.default_retry_delay or 0)
        hare_task = hare_app.task(
            name=name,
            queue=self.queue if isinstance(self.queue, str) else None,
            **policy,
            autoretry_for=(),
            retry_jitter=False,
            time_limit=self.time_limit or None,
            soft_time_limit=self.soft_time_limit or None,
            reject_on_worker_lost=bool(self.reject_on_worker_lost),
            retry_on_worker_lost=lost_retries,
        )(self._entry)
        hare_task.sender = self
        hare_task.throws = tuple(self.throws)
        hare_task.ignore_result = bool(self.ignore_result)
        hare_task.after_signal = after_signal(self)
        hare_task.track_started = bool(self.track_started)
        # Celery's `__header__`, which decides how the task is called as an errback: the
        # decorated function's; a bound task's (a partial there) and a class-based task's
        # (none) make it one sent the failed task's id.
        fun = getattr(self, "_decorated_fun", None)
        bound = getattr(self, "_bound_self", False)
        hare_task.errback_header = None if fun is None or bound else fun
        self._hare_task = hare_task
        if parse_rate(self.rate_limit) > 0:
            assert self.rate_limit is not None
            self._rate_limiter = RateLimiter(self.rate_limit, hare_app.clock)

    # -- calling here -----------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here, now (`request.called_directly` stays True)."""
        if inspect.iscoroutinefunction(self.run):
            return self._call_async(args, kwargs)
        self.push_request(args=args, kwargs=kwargs)
        try:
            return self.run(*args, **kwargs)
        finally:
            self.pop_request()

    async def _call_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.push_request(args=args, kwargs=kwargs)
        try:
            return await self.run(*args, **kwargs)
        finally:
            self.pop_request()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The body of the task executed by workers."""
        raise NotImplementedError("Tasks must define the run method.")

    # -- the request ------------------------------------------------------------------------

    @property
    def request(self) -> Context:
        """The running call's `Context` (a default one outside any call)."""
        request = current_request(self)
        if request is not None:
            return request
        if self._default_request is None:
            self._default_request = Context()
        return self._default_request

    def push_request(self, *args: Any, **kwargs: Any) -> None:
        push_request(self, Context(*args, **{**self.request.__dict__, **kwargs}))

    def pop_request(self) -> None:
        pop_request(self)

    def add_trail(self, result: Any) -> Any:
        """Record `result` as a child of the running call (`request.children`)."""
        if self.trail:
            self.request.children.append(result)
        return result

    # -- results and state ------------------------------------------------------------------

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        return AsyncResult(task_id, app=self._get_app(), task_name=self.name, **kwargs)

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record a state (e.g. a custom `PROGRESS`) with `meta` for `task_id` (default: this
        call's). A no-op when the app stores no results, as with Celery's disabled backend."""
        eager.update_state(self, task_id, state, meta, kwargs)

    async def aupdate_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """`update_state` for async code (hare's addition)."""
        await eager.aupdate_state(self, task_id, state, meta)

    def send_event(
        self, type_: str, retry: bool = True, retry_policy: Any = None, **fields: Any
    ) -> NoReturn:
        raise NotSupportedError("Task.send_event", "hare sends no custom events")

    # -- representation -----------------------------------------------------------------------

    def __repr__(self) -> str:
        main = getattr(self._app, "main", None) if self._app is not None else None
        return f"<@task: {self.name} of {main or '__main__'}>"

    @property
    def __name__(self) -> str:
        name: str = getattr(type(self), "__name__")  # noqa: B009 -- this property shadows it
        return name


def _explicit(cls: type[Task]) -> dict[str, Any]:
    """The attributes set on `cls` or its bases below hare_compat's `Task`."""
    values: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is Task or not issubclass(klass, Task):
            continue
        values.update((k, v) for k, v in vars(klass).items() if not k.startswith("__"))
    return values
