"""`app.conf`: Celery's settings in any of its three spellings, read lazily from a source.

A setting is found under its lowercase name (`task_always_eager`), its namespaced name when
the app has a namespace (`CELERY_TASK_ALWAYS_EAGER` with `namespace="CELERY"`), or its
Celery 3 name (`CELERY_ALWAYS_EAGER`, `BROKER_URL`, `CELERYD_CONCURRENCY`). Values set on
`app.conf` (or given to `Celery(...)`) win over the config source, which wins over Celery's
defaults. As in Celery, the source is imported when the first setting is read, and without a
namespace a configuration must not mix old and new names.

When the configuration is first read every setting found is checked against
`hare_compat.app.support` (refused values raise `NotSupportedError`; notice-only settings log
one notice each); a value set afterwards is checked when it is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hare_compat.app.defaults import DEFAULTS, NEW_TO_OLD, OLD_TO_NEW, default
from hare_compat.app.loader import resolve, source_get, source_keys
from hare_compat.app.mapping import check
from hare_compat.exceptions import ImproperlyConfigured

__all__ = ("Settings",)

logger = logging.getLogger("hare_compat.conf")

#: Environment variables that override a setting, as in Celery.
_ENVIRONMENT = {
    "broker_url": "CELERY_BROKER_URL",
    "broker_read_url": "CELERY_BROKER_READ_URL",
    "broker_write_url": "CELERY_BROKER_WRITE_URL",
    "result_backend": "CELERY_RESULT_BACKEND",
}
_NAMESPACES = {name.partition("_")[0] for name in DEFAULTS}
_MIXED = """Cannot mix new and old setting keys, please rename the following settings to the \
{kind} format:

{renames}"""


@dataclass
class _State:
    changes: dict[str, Any]
    auto: set[str]
    on_load: Callable[[], None] | None
    source_ref: object = None
    source: object = None
    silent: bool = False
    namespace: str | None = None
    loaded: bool = False
    loading: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    noticed: set[str] = field(default_factory=set)


class Settings:
    """Celery's settings by attribute (`conf.task_routes`) or item (`conf["task_routes"]`)."""

    _state: _State

    def __init__(
        self,
        changes: Mapping[str, Any] | None = None,
        *,
        auto: set[str] | None = None,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        state = _State(dict(changes or {}), set(auto or ()), on_load)
        object.__setattr__(self, "_state", state)

    # -- the source --------------------------------------------------------------------------

    def set_source(self, source: object, *, namespace: str | None, silent: bool) -> None:
        """Read settings from `source` (an object, module or import path) from now on."""
        state = self._state
        state.source_ref, state.silent = source, silent
        state.namespace = namespace or state.namespace
        state.source = None
        if state.loaded:
            self._resolve_source()
            self.validate()

    @property
    def namespace(self) -> str | None:
        return self._state.namespace

    @property
    def loaded(self) -> bool:
        return self._state.loaded

    def _resolve_source(self) -> None:
        state = self._state
        if state.source_ref is None:
            return
        try:
            state.source = resolve(state.source_ref)
        except (ImportError, AttributeError):
            if not state.silent:
                raise
            state.source = None

    def load(self) -> None:
        """Read the configuration now (it is otherwise read by the first access)."""
        state = self._state
        if state.loaded or state.loading:
            return
        state.loading = True
        try:
            self._resolve_source()
            if state.on_load is not None:
                state.on_load()
            else:
                self.validate()
            state.loaded = True
        finally:
            state.loading = False

    # -- lookups -----------------------------------------------------------------------------

    def canonical(self, key: str) -> str:
        """The lowercase name `key` spells (itself when it is not a Celery setting)."""
        if key in DEFAULTS:
            return key
        if key in OLD_TO_NEW:
            return OLD_TO_NEW[key]
        namespace = self._state.namespace
        if namespace and key.lower().startswith(namespace.lower() + "_"):
            bare = key[len(namespace) + 1 :].lower()
            if bare in DEFAULTS:
                return bare
        return key

    def _spellings(self, name: str) -> list[str]:
        namespace = self._state.namespace
        spellings = []
        if namespace:
            prefixed = f"{namespace}_{name}"
            spellings.append(prefixed.upper() if namespace.isupper() else prefixed.lower())
        spellings.append(name)
        if name in NEW_TO_OLD:
            spellings.append(NEW_TO_OLD[name])
        return spellings

    def find(self, key: str) -> tuple[bool, Any, str]:
        """`(found, value, spelling)`: a setting's value where the user set it (no default)."""
        self.load()
        state = self._state
        name = self.canonical(key)
        variable = _ENVIRONMENT.get(name)
        if variable and os.environ.get(variable):
            return True, os.environ[variable], variable
        spellings = self._spellings(name)
        for spelled in spellings:
            if spelled in state.changes:
                return True, state.changes[spelled], spelled
        if state.source is not None:
            for spelled in spellings:
                found, value = source_get(state.source, spelled)
                if found:
                    return True, value, spelled
        return False, None, name

    def __getitem__(self, key: str) -> Any:
        found, value, _ = self.find(key)
        if found:
            return value
        name = self.canonical(key)
        if name == "timezone":  # as Celery: Django's TIME_ZONE when timezone is unset
            found, value, _ = self.find("TIME_ZONE")
            if found:
                return value
        if name not in DEFAULTS:
            raise KeyError(key)
        defaults = self._state.defaults
        if name not in defaults:
            defaults[name] = default(name)  # a copy, so `conf.beat_schedule[k] = v` sticks
        return defaults[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def first(self, *keys: str) -> Any:
        """The first of `keys` whose value is not None (Celery's `conf.first`)."""
        return next((v for v in (self.get(k) for k in keys) if v is not None), None)

    def value_set_for(self, key: str) -> bool:
        """Whether the user set `key` (in any spelling), rather than leaving Celery's default."""
        return self.find(key)[0]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self.canonical(key) in DEFAULTS or self.find(key)[0])

    # -- changes -----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        state = self._state
        state.changes[key] = value
        name = self.canonical(key)
        state.defaults.pop(name, None)
        if state.loaded and name in DEFAULTS:
            check(name, key, value, self.notice)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, other: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        for key, value in {**(other or {}), **kwargs}.items():
            self[key] = value

    def setdefault(self, key: str, value: Any) -> Any:
        """Set `key` unless the user set it (a Celery default counts as unset)."""
        found, current, _ = self.find(key)
        if found:
            return current
        self[key] = value
        return value

    def changes(self) -> dict[str, Any]:
        """The settings set on `app.conf` or given to `Celery(...)`, as spelt."""
        return dict(self._state.changes)

    def table(self) -> dict[str, Any]:
        """Every setting the user set, by lowercase name (Celery's `conf.table()`)."""
        return {name: self[name] for name in DEFAULTS if self.value_set_for(name)}

    def __iter__(self) -> Iterator[str]:
        return iter(DEFAULTS)

    def __repr__(self) -> str:
        return f"<Settings namespace={self._state.namespace!r} loaded={self._state.loaded}>"

    # -- checks ------------------------------------------------------------------------------

    def notice(self, name: str, text: str) -> None:
        """Log `text` about setting `name`, once per app."""
        if name not in self._state.noticed:
            self._state.noticed.add(name)
            logger.info("hare_compat: %s", text)

    def _present_keys(self) -> set[str]:
        state = self._state
        keys = set(state.changes)
        if state.source is not None:
            keys.update(source_keys(state.source))
        return keys

    def validate(self) -> None:
        """Check every setting the user set (and refuse a mix of old and new names)."""
        present = self._present_keys()
        if not self._state.namespace:
            self._refuse_mixing(present - self._state.auto)
        for name in DEFAULTS:
            found, value, spelled = self.find(name)
            if found:
                check(name, spelled, value, self.notice)
        self._notice_unknown(present)

    def _refuse_mixing(self, have: set[str]) -> None:
        new = {key for key in have if key in DEFAULTS}
        old = {key for key in have if key in OLD_TO_NEW}
        if not new or not old:
            return
        if len(old) > len(new):  # mostly old names: the new ones are the odd ones out
            kind, convert, left = "old", NEW_TO_OLD, new
        else:
            kind, convert, left = "new", OLD_TO_NEW, old
        renames = [
            f"{key:<36} -> {convert[key]}" for key in sorted(left) if convert[key] not in have
        ]
        if renames:
            raise ImproperlyConfigured(_MIXED.format(kind=kind, renames="\n".join(renames)))

    def _notice_unknown(self, present: set[str]) -> None:
        """Log names that look like settings but are none (typos, a forgotten namespace)."""
        namespace = self._state.namespace
        for key in sorted(present):
            if self.canonical(key) in DEFAULTS:
                continue
            bare = key.lower()
            if namespace and bare.startswith(namespace.lower() + "_"):
                self.notice(key, f"{key} is not a Celery setting; ignored")
            elif not namespace and key.isupper() and bare.removeprefix("celery_") in DEFAULTS:
                self.notice(key, f"{key} is read only with namespace='CELERY'; ignored")
            elif key.islower() and key.partition("_")[0] in _NAMESPACES:
                self.notice(key, f"{key} is not a Celery setting; ignored")
