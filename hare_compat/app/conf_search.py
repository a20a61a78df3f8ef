"""Celery's search of the settings by namespace and key: `conf.find_option(name, namespace)`,
`find_value_for_key`, `get_by_parts`.

A mixin of `hare_compat.app.conf.Settings`, kept apart because it is one concept: how
Celery's `(namespace, key)` parts name a setting (`("worker", "disable_rate_limits")` is
`worker_disable_rate_limits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from hare_compat.app.defaults import DEFAULTS

__all__ = ("SearchResult", "SettingsSearch")


class SearchResult(NamedTuple):
    """What `find_option` finds: Celery's `(namespace, key, type)`; `type` is the default
    value here (hare_compat keeps no option types)."""

    namespace: str | None
    key: str
    type: Any


#: Settings with no namespace (`find_option` takes them by their whole name).
_BARE_NAMES = frozenset(
    {"accept_content", "result_accept_content", "enable_utc", "imports", "include", "timezone"}
)


class SettingsSearch:
    """`find_option`, `find_value_for_key` and `get_by_parts` of `app.conf`."""

    if TYPE_CHECKING:

        def __getitem__(self, key: str) -> Any: ...

    def find_option(self, name: str, namespace: str = "") -> SearchResult:
        """`(namespace, key, default)` of the setting `name` names, in `namespace` first
        (`find_option("disable_rate_limits")` -> `("worker", "disable_rate_limits", False)`)."""
        name, namespace = name.lower(), namespace.lower()
        if namespace and f"{namespace}_{name}" in DEFAULTS:
            return SearchResult(namespace, name, DEFAULTS[f"{namespace}_{name}"])
        for full in DEFAULTS:
            prefix, _, rest = full.partition("_")
            if rest == name and full not in _BARE_NAMES:
                return SearchResult(prefix, name, DEFAULTS[full])
        if name in DEFAULTS:
            return SearchResult(None, name, DEFAULTS[name])
        raise KeyError(name)

    def find_value_for_key(self, name: str, namespace: str = "celery") -> Any:
        """The value of the setting `find_option(name, namespace)` finds."""
        return self.get_by_parts(*self.find_option(name, namespace)[:-1])

    def get_by_parts(self, *parts: str | None) -> Any:
        """`get_by_parts("worker", "disable_rate_limits")` is `conf.worker_disable_rate_limits`."""
        return self["_".join(part for part in parts if part)]
