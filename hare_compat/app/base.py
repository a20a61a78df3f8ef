"""`Celery`: Celery's application object over a `hare.Hare`.

A project keeps its `proj/celery.py` (`Celery(...)`, `config_from_object`, `autodiscover_tasks`)
and starts `hare worker proj.celery:app`. The app reads its settings lazily (see
`hare_compat.app.conf`), registers tasks as Celery does (`@app.task` is lazy until the app
finalizes; tasks are shared with every app), routes and sends through the hare app built
from the settings on first use (`app.hare`), and turns `beat_schedule` into hare's
beat-less periodic tasks when a worker loads it (`__hare_app__`). Its configuration
(`hare_compat.app.configuration`), worker options (`hare_compat.app.worker_options`),
sending (`hare_compat.app.publishing`), bound classes (`app.AsyncResult`...:
`hare_compat.app.bound_classes`) and periodic tasks (`hare_compat.app.beat`) are mixins of
their own.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from hare.app import Hare
from hare.errors import NotSupportedError
from hare_compat import _state, signals
from hare_compat.app import djangofixup, loader
from hare_compat.app.autoretry import add_autoretry_behaviour
from hare_compat.app.backend import Backend
from hare_compat.app.beat import PeriodicTasks
from hare_compat.app.bound_classes import BoundClasses
from hare_compat.app.builtins import add_builtin_tasks
from hare_compat.app.conf import Settings
from hare_compat.app.configuration import Configuration
from hare_compat.app.control import Control
from hare_compat.app.factory import task_from_function
from hare_compat.app.mapping import hare_settings
from hare_compat.app.publishing import Publishing
from hare_compat.app.registry import Promise, TaskRegistry
from hare_compat.app.routes import AMQP
from hare_compat.app.task import Task as TaskType
from hare_compat.app.trace import CELERY_LOGGERS
from hare_compat.app.worker_options import WorkerOptions
from hare_compat.app.worker_options import worker_concurrency as worker_concurrency
from hare_compat.utils import bugreport
from hare_compat.utils.local import Proxy
from hare_compat.worker import control as worker_control

if TYPE_CHECKING:
    from hare_compat.app.typed_task import BindingDecorator, FunctionTask

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ("Celery",)


class Celery(Configuration, WorkerOptions, Publishing, BoundClasses, PeriodicTasks):
    """Celery's app: settings, tasks, routing, sending; `app.hare` is the hare app behind it."""

    def __init__(
        self,
        main: str | None = None,
        loader: Any = None,
        backend: str | None = None,
        amqp: Any = None,
        events: Any = None,
        log: Any = None,
        control: Any = None,
        set_as_current: bool = True,
        tasks: Any = None,
        broker: str | Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        changes: Mapping[str, Any] | None = None,
        config_source: object = None,
        fixups: Iterable[str] | None = None,
        task_cls: type[TaskType] | str | None = None,
        autofinalize: bool = True,
        namespace: str | None = None,
        strict_typing: bool = True,
        config_source_silent: bool = False,
        **kwargs: Any,
    ) -> None:
        machinery = {"loader": loader, "amqp": amqp, "events": events, "log": log}
        _refuse_machinery(machinery | {"control": control, "tasks": tasks})
        self.main = main
        self.autofinalize = autofinalize
        self.strict_typing = strict_typing
        self.set_as_current = set_as_current
        auto = {"broker_url": broker, "result_backend": backend, "include": include, **kwargs}
        self._conf = Settings(_given(changes, auto), auto=set(auto), on_load=self._load_config)
        if config_source is not None:
            self._conf.set_source(config_source, namespace=namespace, silent=config_source_silent)
        elif namespace:
            self._conf.set_source(None, namespace=namespace, silent=False)
        self._task_cls = task_cls
        self._pending_defaults: deque[Callable[[], Any]] = deque()
        self._selected_queues: list[str] | None = None
        self._tasks = TaskRegistry()
        self._pending: deque[Promise] = deque()
        self._discoveries: list[tuple[Any, str | None]] = []
        self._pending_periodic: list[tuple[str, dict[str, Any]]] = []
        self.configured = False
        self.finalized = False
        self._lock = threading.RLock()
        self._hare: Hare | None = None
        self._serving = False
        self._periodics: set[str] = set()
        self._django = fixups is None and djangofixup.uses_django()
        self._add_signals()
        if set_as_current:
            self.set_current()
        if self._django and _state.default_app is None:
            self.set_default()
        _state.register_app(self)
        self.on_init()

    def _add_signals(self) -> None:
        """The app's own signals, as Celery's (`on_after_fork` is never sent)."""
        self.on_configure = signals.Signal("app.on_configure")
        self.on_after_configure = signals.Signal("app.on_after_configure")
        self.on_after_finalize = signals.Signal("app.on_after_finalize")
        self.on_after_fork = signals.NeverSent(
            "app.on_after_fork", "hare's worker processes are started afresh, never forked"
        )

    def on_init(self) -> None:
        """Called at the end of `__init__` (override it in a subclass, as in Celery)."""

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    def set_current(self) -> None:
        """Make this the current app of this thread."""
        _state.set_current_app(self)

    def set_default(self) -> None:
        """Make this the app `current_app` falls back on in every thread."""
        _state.set_default_app(self)

    def close(self) -> None:
        """Close the hare app's connections (if it was built)."""
        if self._hare is not None:
            self._hare.close()
        _state.deregister_app(self)

    def __enter__(self) -> Celery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- tasks -------------------------------------------------------------------------------

    @cached_property
    def Task(self) -> type[TaskType]:
        """The app's base task class (assignable: `app.Task = MyTask`)."""
        return self.create_task_cls()

    def create_task_cls(self) -> type[TaskType]:
        """A subclass of `task_cls` (Celery's Task by default) bound to this app."""
        base: Any = self._task_cls or TaskType
        if isinstance(base, str):
            base = loader.symbol_by_name(base)
        return type("Task", (base,), {"_app": self, "abstract": True, "__module__": __name__})

    def type_checker(self, fun: Callable[..., Any], bound: bool = False) -> Any:
        """A function with `fun`'s parameters that raises `TypeError` for a call `fun`
        could not take (`bound`: without its first, `self`)."""
        signature = inspect.signature(fun)
        first = (None,) if bound else ()

        def check(*args: Any, **kwargs: Any) -> None:
            signature.bind(*first, *args, **kwargs)

        return staticmethod(check)

    def gen_task_name(self, name: str, module: str) -> str:
        """Celery's task name: `module.name`, with the app's main name for `__main__`."""
        if module == "__main__" and self.main:
            module = self.main
        return ".".join(part for part in (module, name) if part)

    @overload
    def task(self, fun: Callable[P, R], /) -> FunctionTask[P, R]: ...

    @overload
    def task(self, *, bind: Literal[True], **opts: Any) -> BindingDecorator: ...

    @overload
    def task(
        self, *, bind: Literal[False] = ..., **opts: Any
    ) -> Callable[[Callable[P, R]], FunctionTask[P, R]]: ...

    def task(self, *args: Any, **opts: Any) -> Any:
        """`@app.task` or `@app.task(bind=True, ...)`: a task, lazily created like Celery's."""

        def create(
            shared: bool = True, filter: Any = None, lazy: bool = True, **options: Any
        ) -> Any:
            def decorate(fun: Callable[..., Any]) -> Any:
                if shared:
                    _state.connect_on_app_finalize(lambda app: app._task_from_fun(fun, **options))
                if not lazy or self.finalized:
                    task: Any = self._task_from_fun(fun, **options)
                else:
                    promise = Promise(lambda: self._task_from_fun(fun, **options))
                    self._pending.append(promise)
                    task = Proxy(promise.evaluate)
                return filter(task) if filter is not None else task

            return decorate

        if len(args) == 1:
            if callable(args[0]):
                return create(**opts)(args[0])
            raise TypeError("argument 1 to @task() must be a callable")
        if args:
            raise TypeError(f"@task() takes exactly 1 argument ({len(args) + len(opts)} given)")
        return create(**opts)

    def _task_from_fun(self, fun: Callable[..., Any], **options: Any) -> TaskType:
        with self._lock:
            task = task_from_function(self, fun, **options)
            if self._serving:
                task.bind_hare(self.hare)
            return task

    def register_task(self, task: Any, **options: Any) -> Any:
        """Register a class-based task (Celery's `app.register_task`): an instance, or a
        `Task` subclass, which is instantiated as Celery does."""
        if inspect.isclass(task):
            task = task()
        if not task.name:
            task_cls = type(task)
            task.name = self.gen_task_name(task_cls.__name__, task_cls.__module__)
        add_autoretry_behaviour(task, **options)
        self.tasks[task.name] = task
        task._app = self
        task.bind(self)
        if self._serving:
            task.bind_hare(self.hare)
        return task

    @property
    def tasks(self) -> TaskRegistry:
        """The registered tasks by name (finalizes the app, as Celery's)."""
        self.finalize(auto=True)
        return self._tasks

    def finalize(self, auto: bool = False) -> None:
        """Create the pending and shared tasks (once)."""
        with self._lock:
            if self.finalized:
                return
            if auto and not self.autofinalize:
                raise RuntimeError("Contract breach: app not finalized")
            self.finalized = True
            _state.announce_app_finalized(self)
            while self._pending:
                self._pending.popleft().evaluate()
            add_builtin_tasks(self)
            self.on_after_finalize.send(sender=self)

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str | None = "tasks",
        force: bool = False,
    ) -> None:
        """Import `<package>.tasks` of each package (Django: of INSTALLED_APPS) when the worker
        loads the app; `force=True` imports them now."""
        if force:
            self._discover(packages, related_name)
        else:
            self._discoveries.append((packages, related_name))

    def _discover(self, packages: Any, related_name: str | None) -> None:
        if packages is None:
            packages = djangofixup.packages() if self._django else []
        loader.discover(packages, related_name)

    def import_default_modules(self) -> None:
        """What Celery's worker imports at start: autodiscovery, then `imports`, `include`."""
        if self._django:
            djangofixup.setup()
        for _, answer in signals.import_modules.send(sender=self):
            if isinstance(answer, Exception):
                raise answer
        while self._discoveries:
            self._discover(*self._discoveries.pop(0))
        loader.import_modules(self.conf.imports or ())
        loader.import_modules(self.conf.include or ())

    # -- the hare app ------------------------------------------------------------------------

    @property
    def hare(self) -> Hare:
        """The hare app for these settings, built on first use."""
        with self._lock:
            if self._hare is None:
                hare = Hare(self.main or "", **hare_settings(self.conf))
                # Messages hare sends without a queue (chain steps, callbacks, retries of
                # unknown tasks) are routed by `task_routes`, as Celery routes them.
                hare.router = lambda name: self.router.route({}, name)["queue"]
                # The worker's task lines go where Celery's do, for log filters written for it.
                hare.trace_loggers = CELERY_LOGGERS
                worker_control.serve_commands(hare, self)
                self._hare = hare
            return self._hare

    def __hare_app__(self) -> Hare:
        """What `hare worker proj.celery:app` runs: tasks imported and bound, schedules added."""
        self.conf.load()
        node = f"hare.{os.getpid()}@{socket.gethostname()}"
        signals.celeryd_init.send(sender=node, instance=None, conf=self.conf, options={})
        self.import_default_modules()
        self.finalize()
        hare = self.hare
        with self._lock:
            self._serving = True
            for task in list(self._tasks.values()):
                task.bind_hare(hare)
            self._add_periodics()
        # As Celery's worker: `include` names every module a task came from (`inspect conf`).
        modules = {getattr(task.run, "__module__", "") for task in self._tasks.values()}
        self.conf.include = tuple(sorted({*(self.conf.include or ()), *modules} - {""}))
        if self._django:
            djangofixup.connect_worker()
        signals.celeryd_after_setup.send(sender=node, instance=None, conf=self.conf)
        return hare

    @property
    def backend(self) -> Backend:
        """The result store, with Celery's backend methods (`get_task_meta`...)."""
        return Backend(self.hare.results)

    @property
    def amqp(self) -> AMQP:
        """The app's queues (`app.amqp.queues`), as Celery's `app.amqp` lists them."""
        return AMQP(self.conf)

    @cached_property
    def control(self) -> Control:
        """Remote control and inspection (`hare.control`)."""
        return Control(self)

    # -- Celery's other entry points ---------------------------------------------------------

    @property
    def current_task(self) -> Any:
        """The task running in this thread or coroutine, or `None`."""
        return _state.get_current_task()

    current_worker_task = current_task

    def bugreport(self) -> str:
        """Versions and settings to paste into a bug report."""
        return bugreport(self)

    def start(self, argv: Any = None) -> None:
        raise NotSupportedError("Celery.start()", "run `hare worker module:app` instead")

    def worker_main(self, argv: Any = None) -> None:
        raise NotSupportedError("Celery.worker_main()", "run `hare worker module:app` instead")


def _refuse_machinery(machinery: Mapping[str, Any]) -> None:
    """Celery's pluggable machinery (`loader=`, `amqp=`...): hare has none to plug into."""
    for option, value in machinery.items():
        if value is not None:
            raise NotSupportedError(f"Celery({option}=)", "hare has no pluggable machinery")


def _given(changes: Mapping[str, Any] | None, auto: Mapping[str, Any]) -> dict[str, Any]:
    """The settings given to `Celery(...)`: `changes`, then the arguments that were given."""
    return {**(changes or {}), **{key: value for key, value in auto.items() if value is not None}}


# `current_app` before any app was created: this default one (`hare_compat._state` sits below
# the app, so it is told how to make one).
_state.set_default_app_factory(lambda: Celery("default", set_as_current=False))
