"""`beat_schedule` and `add_periodic_task` -> hare's periodic tasks, which need no beat.

Each entry (`{"task": name, "schedule": ..., "args": ..., "kwargs": ..., "options": ...}`)
becomes `Hare.add_periodic(entry_name, schedule, task=name, ...)`: every worker keeps it
going and the broker lets exactly one of them publish each occurrence. The queue is the
entry's `options["queue"]`, else the task's route, as Celery's beat would send it; `expires`
(seconds after the occurrence) is passed on when hare's `add_periodic` takes it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hare.app import Hare
from hare.errors import ConfigurationError, NotSupportedError
from hare.periodic.schedules import Schedule
from hare_compat.schedules import to_hare

if TYPE_CHECKING:
    from threading import RLock

    from hare_compat.app.conf import Settings
    from hare_compat.app.routes import Router

__all__ = ("Periodic", "PeriodicTasks", "periodic", "register", "signature_entry", "zone_name")

_ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative"}
_OPTIONS = {"queue", "expires"}


@dataclass(frozen=True, slots=True)
class Periodic:
    """One schedule, ready for `Hare.add_periodic`."""

    name: str
    schedule: Schedule
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expires: float | None = None


def zone_name(timezone: Any, enable_utc: bool) -> str:
    """The zone name crontabs run in, from Celery's `timezone` and `enable_utc`."""
    if timezone is None or timezone == "":
        if enable_utc:
            return "UTC"
        raise NotSupportedError(
            "setting enable_utc=False without timezone",
            "hare runs schedules in a named zone; set timezone, e.g. 'Europe/Berlin'",
        )
    if isinstance(timezone, str):
        return timezone
    for attribute in ("key", "zone"):  # zoneinfo.ZoneInfo, pytz
        name = getattr(timezone, attribute, None)
        if isinstance(name, str):
            return name
    raise ConfigurationError(f"setting timezone={timezone!r} is not a zone name")


def periodic(
    name: str,
    spec: Mapping[str, Any],
    *,
    zone: Callable[[], str],
    route: Callable[[str, dict[str, Any]], str],
) -> Periodic:
    """The hare schedule of `beat_schedule[name]`; `route(task, options)` picks the queue."""
    where = f"beat_schedule[{name!r}]"
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where} must be a dict, not {spec!r}")
    unknown = set(spec) - _ENTRY_KEYS
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    task = spec.get("task")
    if not isinstance(task, str) or not task:
        raise ConfigurationError(f"{where} needs a task name")
    if "schedule" not in spec:
        raise ConfigurationError(f"{where} needs a schedule")
    options = dict(spec.get("options") or {})
    refused = set(options) - _OPTIONS
    if refused:
        raise NotSupportedError(
            f"{where} options {sorted(refused)}", "hare's periodic tasks take queue and expires"
        )
    args, kwargs = spec.get("args") or (), spec.get("kwargs") or {}
    if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"{where}: args must be a list and kwargs a dict")
    return Periodic(
        name=name,
        schedule=to_hare(spec["schedule"], zone),
        task=task,
        queue=route(task, {"queue": options.get("queue")}),
        args=tuple(args),
        kwargs=dict(kwargs),
        expires=_expires(where, options.get("expires")),
    )


def _expires(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{where} options expires must be positive seconds")
    return float(value)


def signature_entry(
    sig: Any, args: Any, kwargs: Any, name: str | None, options: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`add_periodic_task`'s key and entry for a signature or a task, as Celery builds them."""
    if isinstance(sig, Mapping) and isinstance(sig.get("task"), str):
        task = sig["task"]
        # Celery's clone: new args go first, new kwargs win (an immutable signature keeps its own)
        own_args, own_kwargs = tuple(sig.get("args") or ()), dict(sig.get("kwargs") or {})
        immutable = bool(sig.get("immutable"))
        call_args = own_args if immutable else tuple(args or ()) + own_args
        call_kwargs = own_kwargs if immutable else {**own_kwargs, **dict(kwargs or {})}
        options = {**dict(sig.get("options") or {}), **options}
    elif isinstance(getattr(sig, "name", None), str):
        task, call_args, call_kwargs = sig.name, tuple(args or ()), dict(kwargs or {})
    else:
        raise ConfigurationError(f"add_periodic_task needs a task or a signature, not {sig!r}")
    shown = [repr(a) for a in call_args] + [f"{k}={v!r}" for k, v in call_kwargs.items()]
    key = name or f"{task}({', '.join(shown)})"
    return key, {"task": task, "args": call_args, "kwargs": call_kwargs, "options": options}


def register(hare: Hare, entry: Periodic) -> None:
    """Add `entry` to `hare`'s schedules (`expires` only if hare's add_periodic takes it)."""
    extra: dict[str, Any] = {}
    if entry.expires is not None:
        if "expires" not in inspect.signature(hare.add_periodic).parameters:
            raise NotSupportedError(
                f"beat_schedule[{entry.name!r}] options expires",
                "this hare's periodic tasks cannot expire yet",
            )
        extra["expires"] = entry.expires
    hare.add_periodic(
        entry.name,
        entry.schedule,
        task=entry.task,
        args=entry.args,
        kwargs=entry.kwargs,
        queue=entry.queue,
        **extra,
    )


class PeriodicTasks:
    """`add_periodic_task` of a Celery app, and the schedules a serving worker registers.

    A mixin of `hare_compat.app.base.Celery`: periodic tasks are one concept, this module's.
    """

    _lock: RLock
    _pending_periodic: list[tuple[str, dict[str, Any]]]
    _periodics: set[str]
    _serving: bool
    configured: bool

    if TYPE_CHECKING:

        @property
        def conf(self) -> Settings: ...

        @property
        def hare(self) -> Hare: ...

        @property
        def router(self) -> Router: ...

        @property
        def timezone_name(self) -> str: ...

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Any,
        args: Any = (),
        kwargs: Any = (),
        name: str | None = None,
        **opts: Any,
    ) -> str:
        """Add a `beat_schedule` entry for `sig` (a signature or a task) every `schedule`."""
        key, entry = signature_entry(sig, args, kwargs, name, opts)
        entry["schedule"] = schedule
        with self._lock:
            if not self.configured:
                self._pending_periodic.append((key, entry))
                return key
            self.conf.beat_schedule[key] = entry
            if self._serving:
                self._add_periodics()
        return key

    def _add_periodics(self) -> None:
        hare = self.hare
        for key, spec in dict(self.conf.beat_schedule).items():
            if key in self._periodics:
                continue
            entry = periodic(key, spec, zone=lambda: self.timezone_name, route=self._route_queue)
            register(hare, entry)
            self._periodics.add(key)

    def _route_queue(self, task: str, options: dict[str, Any]) -> str:
        queue: str = self.router.route(options, task)["queue"]
        return queue
