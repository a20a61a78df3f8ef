"""`@app.task` on a function: Celery's one subclass of the base `Task` per function."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hare_compat.app.autoretry import add_autoretry_behaviour
from hare_compat.app.pydantic_args import pydantic_wrapper
from hare_compat.app.task import Task
from hare_compat.app.task_options import check_options, check_values
from hare_compat.exceptions import ImproperlyConfigured

__all__ = ("PYDANTIC_OPTIONS", "task_from_function")

#: Celery 5.5's options of `pydantic=True` tasks (`hare_compat.app.pydantic_args`).
PYDANTIC_OPTIONS = ("pydantic", "pydantic_strict", "pydantic_context", "pydantic_dump_kwargs")


def task_from_function(
    app: Any,
    fn: Callable[..., Any],
    *,
    base: type[Task] | None = None,
    bind: bool = False,
    name: str | None = None,
    **options: Any,
) -> Task:
    """Make the task for `fn` as Celery's `app._task_from_fun` does (one subclass of `base`
    per function), bound to `app` and registered in `app.tasks`; an existing task of that
    name is returned as it is."""
    if not callable(fn):
        raise TypeError(f"@task decorates a function, not {fn!r}")
    base = base or getattr(app, "Task", None) or Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise ImproperlyConfigured(f"base= must be a hare_compat Task subclass, not {base!r}")
    if name is None:
        gen = getattr(app, "gen_task_name", None)
        name = gen(fn.__name__, fn.__module__) if gen is not None else _task_name(app, fn)
    existing: Task | None = app.tasks.get(name)
    if existing is not None:
        return existing
    dump: Callable[..., Any] | None = None
    pydantic = {k: options.pop(k) for k in PYDANTIC_OPTIONS if k in options}
    if pydantic.pop("pydantic", False):
        wrapped = pydantic_wrapper(
            app,
            fn,
            name,
            strict=bool(pydantic.get("pydantic_strict", False)),
            context=pydantic.get("pydantic_context"),
            dump_kwargs=pydantic.get("pydantic_dump_kwargs"),
        )
        fn, dump = wrapped.wrapper, functools.partial(wrapped.dump_arguments, bound=bind)
    check_options(options, base, name)
    check_values(options, name)
    run = fn if bind else staticmethod(fn)
    namespace = {
        "_dump_pydantic_arguments": staticmethod(dump) if dump is not None else None,
        "_app": app,
        "name": name,
        "run": run,
        "_decorated": True,
        "_bound_self": bind,
        "__doc__": fn.__doc__,
        "__module__": fn.__module__,
        "__wrapped__": run,
        "_decorated_fun": staticmethod(fn),
        **options,
    }
    task_class: type[Task] = type(fn.__name__, (base,), namespace)
    task_class.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
    task = task_class()
    app.tasks[name] = task
    task_class.bind(app)
    add_autoretry_behaviour(task, **options)
    return task


def _task_name(app: Any, fn: Callable[..., Any]) -> str:
    """Celery's default name: `module.function`, the app's main name for `__main__`."""
    module = fn.__module__
    main = getattr(app, "main", None)
    if module == "__main__" and main:
        module = main
    return ".".join(part for part in (module, fn.__name__) if part)
