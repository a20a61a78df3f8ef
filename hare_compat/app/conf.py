"""`app.conf`: Celery's settings in any of its three spellings, read lazily from a source.

A setting is found under its lowercase name (`task_always_eager`), its namespaced name when
the app has a namespace (`CELERY_TASK_ALWAYS_EAGER` with `namespace="CELERY"`), or its
Celery 3 name (`CELERY_ALWAYS_EAGER`, `BROKER_URL`, `CELERYD_CONCURRENCY`). Values set on
`app.conf` (or given to `Celery(...)`) win over the config source, which wins over Celery's
defaults. As in Celery, the source is imported when the first setting is read, and without a
namespace a configuration must not mix old and new names.

When the configuration is first read every setting found is checked against
`hare_compat.app.support` (refused values raise `NotSupportedError`; notice-only settings log
one notice each; see `hare_compat.app.validation`); a value set afterwards is checked when it
is set. Celery's search by namespace and key (`find_option`) is a mixin of its own
(`hare_compat.app.conf_search`).
"""

from __future__ import annotations

import os
import pprint
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from dataclasses import dataclass, field
from typing import Any

from hare_compat.app.censoring import censored as _censored
from hare_compat.app.conf_search import SearchResult as SearchResult
from hare_compat.app.conf_search import SettingsSearch
from hare_compat.app.defaults import DEFAULTS, NEW_TO_OLD, OLD_TO_NEW, default
from hare_compat.app.loader import resolve, source_get
from hare_compat.app.mapping import check
from hare_compat.app.validation import SettingsValidation

__all__ = ("Settings",)

#: Environment variables that override a setting, as in Celery.
_ENVIRONMENT = {
    "broker_url": "CELERY_BROKER_URL",
    "broker_read_url": "CELERY_BROKER_READ_URL",
    "broker_write_url": "CELERY_BROKER_WRITE_URL",
    "result_backend": "CELERY_RESULT_BACKEND",
}


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
    #: Defaults given by `add_defaults` (newest last), below the user's values.
    added: dict[str, Any] = field(default_factory=dict)
    observers: list[Callable[..., Any]] = field(default_factory=list)


class Settings(SettingsValidation, SettingsSearch, MutableMapping[str, Any]):
    """Celery's settings by attribute (`conf.task_routes`) or item (`conf["task_routes"]`).

    A mapping as Celery's `app.conf`: its keys are every Celery setting and the other names
    given to it; deleting or popping a key removes the value the user set (the default
    shows again), as in Celery.
    """

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
        if name in self._state.added:
            return self._state.added[name]
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

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set every key of a mapping (or of key/value pairs) and of `kwargs`; callbacks
        given to `bind_to` are called with them, as Celery's."""
        given = dict(*args)
        for key, value in {**given, **kwargs}.items():
            self[key] = value
        for callback in self._state.observers:
            callback(*((given,) if args else ()), **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Set `key` unless the user set it (a Celery default counts as unset)."""
        found, current, _ = self.find(key)
        if found:
            return current
        self[key] = default
        return default

    def _changed_spelling(self, key: str) -> str | None:
        """The spelling under which the user set `key` on the app (`changes`), if any."""
        changes = self._state.changes
        if key in changes:
            return key
        return next((s for s in self._spellings(self.canonical(key)) if s in changes), None)

    def __delitem__(self, key: str) -> None:
        """Drop the value set for `key` on the app (`KeyError` if none was set there)."""
        spelled = self._changed_spelling(key)
        if spelled is None:
            raise KeyError(f"Key not found in first mapping: {key!r}")
        del self._state.changes[spelled]
        self._state.defaults.pop(self.canonical(key), None)

    def pop(self, key: str, *default: Any) -> Any:
        """Remove and return the value set for `key` on the app; `default` if none was."""
        spelled = self._changed_spelling(key)
        if spelled is None:
            if default:
                return default[0]
            raise KeyError(key)
        value = self._state.changes[spelled]
        del self[spelled]
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last value set on the app."""
        if not self._state.changes:
            raise KeyError("popitem(): no setting was changed")
        key = next(reversed(self._state.changes))
        return key, self.pop(key)

    def clear(self) -> None:
        """Forget the values set on the app; the source and the defaults stay."""
        self._state.changes.clear()
        self._state.defaults.clear()

    def keys(self) -> KeysView[str]:
        return KeysView(self)

    def items(self) -> ItemsView[str, Any]:
        return ItemsView(self)

    def values(self) -> ValuesView[Any]:
        return ValuesView(self)

    def iterkeys(self) -> Iterator[str]:
        return iter(self)

    def iteritems(self) -> Iterator[tuple[str, Any]]:
        return ((key, self[key]) for key in self)

    def itervalues(self) -> Iterator[Any]:
        return (self[key] for key in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @classmethod
    def fromkeys(cls, iterable: Iterable[str], *args: Any) -> Settings:
        """Settings with each of `iterable` set to the value given (None by default)."""
        return cls(dict.fromkeys(iterable, *args))

    def add_defaults(self, d: Any) -> None:
        """Defaults for settings (or the app's own names) the user did not set: a mapping,
        or an object whose attributes are read (Celery's `force_mapping`)."""
        mapping = d if isinstance(d, Mapping) else vars(d)
        for key, value in mapping.items():
            name = self.canonical(key)
            if self._state.loaded and name in DEFAULTS:
                check(name, key, value, self.notice)
            self._state.added[name] = value
            self._state.defaults.pop(name, None)

    def bind_to(self, callback: Callable[..., Any]) -> None:
        """Call `callback` with the arguments of every `update()`."""
        self._state.observers.append(callback)

    def copy(self) -> Settings:
        """An independent copy: the same source, the values set so far."""
        state = self._state
        copied = Settings(state.changes, auto=state.auto)
        copied._state.source_ref, copied._state.silent = state.source_ref, state.silent
        copied._state.namespace = state.namespace
        copied._state.added = dict(state.added)
        return copied

    __copy__ = copy

    def swap_with(self, other: Settings) -> None:
        """Take `other`'s values and source as this object's own."""
        object.__setattr__(self, "_state", other._state)

    def finalize(self) -> Settings:
        """Read the configuration now; returns the settings."""
        self.load()
        return self

    def without_defaults(self) -> dict[str, Any]:
        """The settings the user set, by lowercase name (a dict, where Celery gives a view)."""
        return self.table(censored=False)

    def humanize(self, with_defaults: bool = False, censored: bool = True) -> str:
        """`table()` as text, one `name: value` a line."""
        return "\n".join(
            f"{key}: {pprint.pformat(value, width=50)}"
            for key, value in self.table(with_defaults, censored).items()
        )

    def changes(self) -> dict[str, Any]:
        """The settings set on `app.conf` or given to `Celery(...)`, as spelt."""
        return dict(self._state.changes)

    def table(self, with_defaults: bool = False, censored: bool = True) -> dict[str, Any]:
        """The settings the user set (every setting `with_defaults`), by lowercase name;
        `censored` hides passwords, keys and tokens as Celery does."""
        table = {name: self[name] for name in self if with_defaults or self.value_set_for(name)}
        return _censored(table) if censored else table

    def __iter__(self) -> Iterator[str]:
        """Every Celery setting, then the other names the app was given."""
        yield from DEFAULTS
        extra = {self.canonical(key) for key in (*self._state.changes, *self._state.added)}
        yield from sorted(extra - DEFAULTS.keys())

    def __repr__(self) -> str:
        return f"<Settings namespace={self._state.namespace!r} loaded={self._state.loaded}>"

    # -- identity ----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__
