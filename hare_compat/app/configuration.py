"""The Celery app's configuration: where its settings come from, when they are read, and the
timezone they name.

A mixin of `hare_compat.app.base.Celery`, kept apart because it is one concept: `app.conf`
(a `hare_compat.app.conf.Settings`), `config_from_object` / `config_from_envvar`,
`add_defaults`, what happens when the configuration is first read, and the app's timezone;
and `conf_get`, how the rest of hare_compat reads one setting of an app.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hare_compat.app import beat
from hare_compat.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from hare.signals import Signal
    from hare_compat.app.conf import Settings

__all__ = ("Configuration", "conf_get")


class Configuration:
    """`app.conf`, the config sources, `add_defaults` and the timezone of a Celery app."""

    _conf: Settings
    _pending_defaults: deque[Callable[[], Any]]
    _pending_periodic: list[tuple[str, dict[str, Any]]]
    configured: bool
    on_configure: Signal
    on_after_configure: Signal

    @property
    def conf(self) -> Settings:
        """The settings (read from the config source on first access)."""
        return self._conf

    @property
    def namespace(self) -> str | None:
        return self._conf.namespace

    def config_from_object(
        self, obj: object, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Read settings from a module, class, object or `"module:attr"` path (lazily)."""
        self._conf.set_source(obj, namespace=namespace, silent=silent)
        if force:
            self._conf.load()

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> bool:
        """Read settings from the module named by environment variable `variable_name`."""
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return False
            raise ImproperlyConfigured(f"environment variable {variable_name} is not set")
        self.config_from_object(module_name, silent=silent, force=force)
        return True

    def add_defaults(self, fun: Any) -> None:
        """Defaults for settings the configuration leaves unset: a mapping, or a callable
        returning one, called when the configuration is read (Celery's `add_defaults`)."""
        if not callable(fun):
            given, fun = fun, lambda: given
        if self.configured:
            self._conf.add_defaults(fun())
        else:
            self._pending_defaults.append(fun)

    def prepare_config(self, c: Any) -> Any:
        """Celery's hook on the configuration before it is merged with the defaults: hare
        reads the configuration lazily, name by name, and does not call it."""
        return c

    def either(self, default_key: str, *defaults: Any) -> Any:
        """The first of `defaults` that is not None, else the setting `default_key`."""
        found = next((value for value in defaults if value is not None), None)
        return found if found is not None else self.conf.get(default_key)

    def _load_config(self) -> None:
        self.on_configure.send(sender=self)
        while self._pending_defaults:
            self._conf.add_defaults(self._pending_defaults.popleft()())
        self._conf.validate()
        self.configured = True
        while self._pending_periodic:
            key, entry = self._pending_periodic.pop(0)
            self._conf.beat_schedule[key] = entry
        self.on_after_configure.send(sender=self, source=self._conf)

    @property
    def timezone_name(self) -> str:
        """The zone crontab schedules run in (`timezone`, else UTC when `enable_utc`)."""
        return beat.zone_name(self.conf.timezone, bool(self.conf.enable_utc))

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone_name)

    def now(self) -> datetime:
        """The current time in the app's timezone."""
        return datetime.now(self.timezone)

    def uses_utc_timezone(self) -> bool:
        return self.timezone_name == "UTC"


def conf_get(app: Any, name: str, default: Any = None) -> Any:
    """A Celery setting of `app`, or `default` when the app has no such setting."""
    try:
        value = app.conf[name]
    except (KeyError, LookupError, AttributeError, TypeError):
        return default
    return default if value is None else value
