"""`Proxy`: an object that stands for whatever a function returns each time it is used.

Celery's `current_app`, `current_task` and the tasks `@shared_task` returns are proxies: a
shared task resolves to the current app's copy of the task on every use. As Celery's,
`isinstance(proxy, cls)` looks at the object behind the proxy.

Its public path is `hare_compat.utils.local`; it is defined here, below `hare_compat._state`,
so that `_state` needs nothing of `hare_compat.utils` (whose `bugreport` reads the current app).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ("Proxy",)


class Proxy:
    """Forwards attribute access, calls and the common operators to `resolve()`'s result."""

    __slots__ = ("__resolve", "__weakref__")

    def __init__(self, resolve: Callable[[], Any]) -> None:
        object.__setattr__(self, "_Proxy__resolve", resolve)

    def _get_current_object(self) -> Any:
        """The object behind the proxy, now."""
        return object.__getattribute__(self, "_Proxy__resolve")()

    @property  # type: ignore[misc]  # as Celery's: isinstance() sees the real class
    def __class__(self) -> type:
        return type(self._get_current_object())

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        doc = getattr(self._get_current_object(), "__doc__", None)
        return doc if isinstance(doc, str) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._get_current_object(), name)

    def __call__(self, *a: Any, **kw: Any) -> Any:
        return self._get_current_object()(*a, **kw)

    def __repr__(self) -> str:
        try:
            return repr(self._get_current_object())
        except Exception as exc:  # a proxy that cannot resolve yet must still print
            return f"<Proxy unbound: {exc}>"

    def __str__(self) -> str:
        return str(self._get_current_object())

    def __bool__(self) -> bool:
        return bool(self._get_current_object())

    def __eq__(self, other: object) -> bool:
        return bool(self._get_current_object() == other)

    def __ne__(self, other: object) -> bool:
        return bool(self._get_current_object() != other)

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __dir__(self) -> list[str]:
        return dir(self._get_current_object())

    def __getitem__(self, key: Any) -> Any:
        return self._get_current_object()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._get_current_object())

    def __len__(self) -> int:
        return len(self._get_current_object())

    def __contains__(self, item: object) -> bool:
        return item in self._get_current_object()

    def __reduce__(self) -> tuple[Any, ...]:
        current = self._get_current_object()
        reduced: tuple[Any, ...] = current.__reduce__()
        return reduced
