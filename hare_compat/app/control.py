"""`app.control`: Celery's synchronous remote-control API over `hare.control`.

    app.control.revoke(task_id, terminate=True)
    app.control.inspect(timeout=1).ping()      # {"hare.123@host": {"ok": "pong"}, ...} or None

Calls run on the app's portal loop (or the worker's loop inside a worker). The requests
speak Celery's pidbox protocol, so Celery workers answer and obey them too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from hare.control import Control as AsyncControl

if TYPE_CHECKING:
    from hare import Hare

__all__ = ("Control", "Inspect")

T = TypeVar("T")


class Control:
    """Celery's `app.control` for one hare app."""

    def __init__(self, hare: Hare) -> None:
        self._hare = hare

    def _run(self, use: Callable[[AsyncControl], Coroutine[Any, Any, T]]) -> T:
        portal, publisher = self._hare.connections.home_portal()

        async def call() -> T:
            return await use(AsyncControl(publisher.transport, clock=self._hare.clock))

        return portal.call(call())

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **options: Any,
    ) -> Any:
        """Revoke task ids: no worker (hare or Celery) starts them, now or later."""
        return self._run(
            lambda c: c.revoke(
                task_id, terminate=terminate, signal=signal, destination=destination, **options
            )
        )

    def terminate(
        self, task_id: str | Sequence[str], signal: str | int = "SIGTERM", **options: Any
    ) -> Any:
        return self.revoke(task_id, terminate=True, signal=signal, **options)

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **options: Any
    ) -> Any:
        return self._run(lambda c: c.ping(destination=destination, timeout=timeout, **options))

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
    ) -> Any:
        return self._run(
            lambda c: c.broadcast(
                command,
                arguments or {},
                destination=destination,
                reply=reply,
                timeout=timeout,
                limit=limit,
            )
        )

    def inspect(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **options: Any
    ) -> Inspect:
        return Inspect(self, destination, timeout)


class Inspect:
    """Celery's `app.control.inspect()`: each method returns `{node: reply}` or None."""

    def __init__(self, control: Control, destination: Sequence[str] | None, timeout: float):
        self._control = control
        self._destination = destination
        self._timeout = timeout

    def _ask(self, method: str) -> Any:
        destination, timeout = self._destination, self._timeout

        async def ask(c: AsyncControl) -> Any:
            return await getattr(c.inspect(destination=destination, timeout=timeout), method)()

        return self._control._run(ask)

    def ping(self) -> Any:
        return self._ask("ping")

    def active(self) -> Any:
        return self._ask("active")

    def registered(self) -> Any:
        return self._ask("registered")

    def stats(self) -> Any:
        return self._ask("stats")

    def revoked(self) -> Any:
        return self._ask("revoked")

    def active_queues(self) -> Any:
        return self._ask("active_queues")

    def reserved(self) -> Any:
        return self._ask("reserved")

    def scheduled(self) -> Any:
        return self._ask("scheduled")

    def report(self) -> Any:
        return self._ask("report")
