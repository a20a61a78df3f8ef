"""Celery's `celery.worker.control`: custom remote-control commands that hare workers answer.

    from hare_compat.worker.control import control_command, inspect_command

    @inspect_command()
    def queue_depths(state, **kwargs):
        return {"hostname": state.hostname}

`app.control.broadcast("queue_depths", reply=True)` (from hare_compat or from Celery) then
gets each hare worker's reply. As in Celery the registry is global (`Panel.data`): every
hare_compat app's workers answer every command registered in the process. A command gets a
`state` with `app` (the hare_compat app), `hostname` and `worker`, and its keyword arguments.
Celery's own worker internals (`state.consumer`) do not exist in hare.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hare.control.pidbox import queue_as_dict
from hare.control.server import ControlState
from hare.errors import ConfigurationError, NotSupportedError
from hare_compat.ratelimit import RateLimiter, parse_rate

__all__ = (
    "Panel",
    "add_consumer",
    "cancel_consumer",
    "control_command",
    "inspect_command",
    "rate_limit",
    "serve_commands",
)


class Panel:
    """The global registry of remote-control commands (Celery's `Panel`)."""

    #: Command name -> the command as hare workers call it: `fn(state, **arguments)`.
    data: dict[str, Callable[..., Any]] = {}
    #: Command name -> (type, visible, help...), as registered.
    meta: dict[str, dict[str, Any]] = {}

    @classmethod
    def register(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            return cls._register(**kwargs)(*args)
        return cls._register(**kwargs)

    @classmethod
    def _register(
        cls,
        name: str | None = None,
        alias: str | None = None,
        type: str = "control",
        visible: bool = True,
        default_timeout: float = 1.0,
        help: str | None = None,
        signature: str | None = None,
        args: Any = None,
        variadic: Any = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def inner(fun: Callable[..., Any]) -> Callable[..., Any]:
            command = name or fun.__name__

            def run(state: ControlState, **arguments: Any) -> Any:
                return fun(CompatState.of(state), **arguments)

            doc = help or (fun.__doc__ or "").strip().split("\n")[0]
            meta = {"type": type, "visible": visible, "default_timeout": default_timeout}
            meta |= {"help": doc, "signature": signature, "args": args, "variadic": variadic}
            for key in (command, alias):
                if key:
                    cls.data[key] = run
                    cls.meta[key] = meta
            return fun

        return inner


def control_command(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command that acts on the worker (Celery's `control_command`)."""
    registered: Callable[[Callable[..., Any]], Callable[..., Any]] = Panel.register(
        type="control", **kwargs
    )
    return registered


def inspect_command(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command that reports on the worker (Celery's `inspect_command`)."""
    registered: Callable[[Callable[..., Any]], Callable[..., Any]] = Panel.register(
        type="inspect", **kwargs
    )
    return registered


@dataclass(frozen=True, slots=True)
class CompatState:
    """A command's `state`: the hare_compat app, the worker's node name, the worker."""

    app: Any
    hostname: str
    worker: Any

    @classmethod
    def of(cls, state: ControlState) -> CompatState:
        app = _APPS.get(state.app, state.app) if state.app is not None else None
        return cls(app=app, hostname=state.hostname, worker=state.worker)


#: hare app -> the hare_compat app it was built for.
_APPS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def serve_commands(hare: Any, app: Any) -> None:
    """Have the workers of `hare` (the hare app of hare_compat `app`) answer the commands
    registered here, now and later."""
    _APPS[hare] = app
    hare.control_commands = Panel.data


def add_consumer(state: Any, queue: str, *args: Any, **kwargs: Any) -> Any:
    """Celery's `add_consumer`: hare workers consume the queues they started with."""
    raise NotSupportedError(
        f"add_consumer({queue!r})", "a hare worker consumes the queues it was started with (-Q)"
    )


def cancel_consumer(state: Any, queue: str, **kwargs: Any) -> Any:
    """Celery's `cancel_consumer`: hare workers consume the queues they started with."""
    raise NotSupportedError(
        f"cancel_consumer({queue!r})", "a hare worker consumes the queues it was started with"
    )


@control_command(
    args=[("task_name", str), ("rate_limit", str)],
    signature="<task_name> <rate_limit (e.g., 5/s | 5/m | 5/h)>",
)
def rate_limit(state: Any, task_name: str, rate_limit: str, **kwargs: Any) -> dict[str, str]:
    """Celery's `rate_limit` (Flower's rate-limit field): a task's new rate on this worker,
    `0` or empty for none. A prefork worker refuses it: its children hold their own limiter,
    out of the command's reach."""
    try:
        per_second = parse_rate(rate_limit)
    except ConfigurationError as exc:
        return {"error": f"Invalid rate limit string: {exc}"}
    task = state.app.tasks.get(task_name) if state.app is not None else None
    if task is None:
        return {"error": "unknown task"}
    if _runs_in_children(task, state.worker):
        return {
            "error": "rate_limit refused: this worker's prefork children run the task with the "
            "rate it started with; restart the worker with the new rate_limit"
        }
    task.rate_limit = rate_limit
    task._rate_limiter = RateLimiter(rate_limit, state.app.hare.clock) if per_second else None
    if not per_second:
        return {"ok": "rate limit disabled successfully"}
    return {"ok": "new rate limit set successfully"}


def _runs_in_children(task: Any, worker: Any) -> bool:
    """Whether `task` runs in the worker's prefork children (a sync task under `-P prefork`,
    or one with `isolation="process"`)."""
    hare_task = getattr(task, "_hare_task", None)
    if hare_task is None or hare_task.is_async:
        return False
    prefork = getattr(getattr(worker, "pool", None), "kind", None) == "prefork"
    return prefork or hare_task.options.isolation == "process"


# -- Celery's inspect commands that need the hare_compat app --------------------------------


@inspect_command(alias="dump_conf", signature="[include_defaults=False]")
def conf(state: Any, with_defaults: bool = False, **kwargs: Any) -> dict[str, Any]:
    """The app's configuration (Celery's `inspect conf`), as JSON."""
    settings = state.app.conf
    table = dict(settings.table(with_defaults=bool(with_defaults)))
    # Celery's settings object carries the Celery 3 names it was given among its keys.
    table.setdefault("deprecated_settings", sorted(settings.deprecated_settings))
    return {
        key: _jsonable(value)
        for key, value in table.items()
        if isinstance(key, str) and not key.startswith("__")
    }


@inspect_command()
def report(state: Any, **kwargs: Any) -> dict[str, str]:
    """Celery's `inspect report`: the app's bug report (versions, settings; secrets hidden)."""
    return {"ok": state.app.bugreport()}


@inspect_command()
def active_queues(state: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The queues consumed, declared as Celery declares them for this app."""
    return [_queue_as_dict(state.app.conf, name) for name in state.worker.queues()]


def _queue_as_dict(conf: Any, name: str) -> dict[str, Any]:
    """The queue Celery makes for `name`: the default queue on `task_default_exchange` (by
    default named like the queue), any other on an exchange of its own name, both of
    `task_default_exchange_type`, routed by the queue's name."""
    default = name == conf.task_default_queue
    return queue_as_dict(
        name,
        exchange=(conf.task_default_exchange if default else None) or name,
        exchange_type=conf.task_default_exchange_type or "direct",
        routing_key=(conf.task_default_routing_key if default else None) or name,
    )


def _jsonable(value: Any) -> Any:
    """`value` as JSON can carry it: containers walked, anything else as its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return repr(value)
