"""hare_compat: Celery's import paths over hare.

Not built yet (it is the next piece of work after the core, delays, deploys and periodic
tasks). Until then every name raises `NotSupportedError` saying so, rather than half-working:

    >>> from hare_compat import Celery
    Traceback (most recent call last):
    ...
    hare.errors.NotSupportedError: hare_compat.Celery is not supported: ...
"""

from __future__ import annotations

from hare.errors import NotSupportedError

__all__: tuple[str, ...] = ()


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NotSupportedError(
        f"hare_compat.{name}",
        "the Celery compatibility layer is not built yet; use hare's own API (hare.Hare)",
    )
