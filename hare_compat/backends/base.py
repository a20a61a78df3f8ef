"""`celery.backends.base`: the names code imports to ask what kind of backend it has.

Celery's key-value backends (Redis, memcached...) subclass `BaseKeyValueStoreBackend`, and
code checks `isinstance(app.backend, BaseKeyValueStoreBackend)` before it relies on their
internals (`_apply_chord_incr`, key formats). hare's backends are none of Celery's classes:
`app.backend` is not an instance, so such code takes its other path.
"""

from __future__ import annotations

from hare_compat import states

__all__ = ("BaseBackend", "BaseKeyValueStoreBackend", "KeyValueStoreBackend", "states")


class BaseBackend:
    """The base of Celery's result backends (no hare backend is one)."""


class BaseKeyValueStoreBackend(BaseBackend):
    """The base of Celery's key-value result backends (no hare backend is one)."""


KeyValueStoreBackend = BaseKeyValueStoreBackend
