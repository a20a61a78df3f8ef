"""`app.control`: Celery's synchronous remote-control API over `hare.control`.

    app.control.revoke(task_id, terminate=True)
    app.control.inspect(timeout=1).ping()      # {"hare.123@host": {"ok": "pong"}, ...} or None

Calls run on the app's portal loop (or the worker's loop inside a worker). The requests
speak Celery's pidbox protocol, so Celery workers answer and obey them too. Every method
takes Celery's arguments with Celery's defaults; None for `timeout` or `signal` means the
default, as in Celery.

Commands that change a worker (`rate_limit`, `time_limit`, `add_consumer`, `shutdown`,
`pool_grow`...) raise `NotSupportedError` naming the command
(`hare_compat.app.control_refused`): hare workers would not obey them, and a command half the
fleet ignores must not look done. `broadcast(command, ...)` still sends any command, for
Celery workers. Read-only `inspect()` commands go to every worker: those hare workers do not
know are answered `{"error": ...}` by them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from hare.control.client import Control as AsyncControl
from hare.control.client import Inspect as AsyncInspect
from hare.errors import NotFound, NotSupportedError
from hare_compat import _state
from hare_compat.app.control_refused import RefusedCommands
from hare_compat.app.routes import declared_queues

if TYPE_CHECKING:
    from hare_compat.app.base import Celery

__all__ = ("Control", "Inspect")

T = TypeVar("T")


def _no_connection(method: str, connection: Any, channel: Any = None) -> None:
    for option, value in (("connection", connection), ("channel", channel)):
        if value is not None:
            raise NotSupportedError(
                f"app.control.{method}({option}=)", "hare uses the app's own connection"
            )


class Control(RefusedCommands):
    """Celery's `app.control` for one app (the current app when `app` is None)."""

    def __init__(self, app: Celery | None = None) -> None:
        if app is None:
            app = _state.get_current_app()
        self.app = app

    def _run(self, use: Callable[[AsyncControl], Coroutine[Any, Any, T]]) -> T:
        hare = self.app.hare
        portal, publisher = hare.connections.home_portal()

        async def call() -> T:
            return await use(AsyncControl(publisher.transport, clock=hare.clock))

        return portal.call(call())

    # -- any command ---------------------------------------------------------------------------

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        connection: Any = None,
        reply: bool = False,
        timeout: float | None = 1.0,
        limit: int | None = None,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        channel: Any = None,
        pattern: str | None = None,
        matcher: str | None = None,
        **extra_kwargs: Any,
    ) -> Any:
        """Send `command` with `arguments` (and `extra_kwargs`) to the workers; with `reply`,
        the replies `[{nodename: reply}, ...]` that came within `timeout` seconds."""
        _no_connection("broadcast", connection, channel)
        merged = dict(arguments or {}, **extra_kwargs)
        return self._run(
            lambda c: c.broadcast(
                command,
                merged,
                destination=destination,
                reply=reply,
                timeout=timeout,
                limit=limit,
                callback=callback,
                pattern=pattern,
                matcher=matcher,
            )
        )

    # -- revoking ------------------------------------------------------------------------------

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int | None = "SIGTERM",
        **kwargs: Any,
    ) -> Any:
        """Revoke task ids: no worker (hare or Celery) starts them, now or later.

        `kwargs` are `broadcast`'s: `reply`, `timeout`, `limit`, `callback`."""
        reply, timeout, limit, callback = _reply_options("revoke", kwargs)
        return self._run(
            lambda c: c.revoke(
                task_id,
                terminate=terminate,
                signal=signal,
                destination=destination,
                reply=reply,
                timeout=timeout,
                limit=limit,
                callback=callback,
            )
        )

    def terminate(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        signal: str | int | None = "SIGTERM",
        **kwargs: Any,
    ) -> Any:
        """`revoke(task_id, terminate=True)`: also stop the task where it runs."""
        return self.revoke(
            task_id, destination=destination, terminate=True, signal=signal, **kwargs
        )

    def revoke_by_stamped_headers(
        self,
        headers: Any,
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int | None = "SIGTERM",
        **kwargs: Any,
    ) -> Any:
        """Revoke the tasks stamped with `headers` (`{name: value or [values]}`): hare and
        Celery workers start none of them; with `terminate`, running ones are stopped.

        `kwargs` are `broadcast`'s: `reply`, `timeout`, `limit`, `callback`."""
        reply, timeout, limit, callback = _reply_options("revoke_by_stamped_headers", kwargs)
        arguments = {"headers": headers, "terminate": terminate, "signal": signal}
        return self.broadcast(
            "revoke_by_stamped_headers",
            arguments,
            destination=destination,
            reply=reply,
            timeout=timeout,
            limit=limit,
            callback=callback,
        )

    # -- reading -------------------------------------------------------------------------------

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float | None = 1.0, **kwargs: Any
    ) -> Any:
        """`[{nodename: {"ok": "pong"}}, ...]` from the workers that answered in time."""
        _, _, limit, callback = _reply_options("ping", kwargs)
        return self._run(
            lambda c: c.ping(
                destination=destination, timeout=timeout, limit=limit, callback=callback
            )
        )

    @cached_property
    def inspect(self) -> type[Inspect]:
        """`app.control.inspect(destination=None, timeout=1.0, ...)`: read-only commands
        (`ping`, `active`, `stats`...), each `{nodename: reply}` or None (Celery's `Inspect`
        class bound to this app)."""
        return type("Inspect", (Inspect,), {"app": self.app})

    def purge(self, connection: Any = None) -> int:
        """Discard the messages waiting in the app's task queues; how many were discarded.

        Tasks waiting out a countdown or an ETA sit in hare's delay ladder, not in the task
        queues, and are not discarded (Celery's purge leaves those held by workers too)."""
        _no_connection("purge", connection)
        conf = self.app.conf
        names = list(declared_queues(conf.task_queues)) or [conf.task_default_queue]

        async def purge(c: AsyncControl) -> int:
            count = 0
            for name in names:
                try:
                    count += await c.transport.purge(name)
                except NotFound:
                    pass  # never declared: nothing waits in it
            return count

        return self._run(purge)

    discard_all = purge


def _reply_options(
    method: str, kwargs: dict[str, Any]
) -> tuple[bool, float | None, int | None, Any]:
    """`broadcast`'s options a command takes through `**kwargs` (Celery passes them on)."""
    _no_connection(method, kwargs.pop("connection", None), kwargs.pop("channel", None))
    for option in ("pattern", "matcher"):
        if kwargs.get(option) is not None:
            raise NotSupportedError(f"app.control.{method}({option}=)", "use broadcast()")
    kwargs.pop("pattern", None)
    kwargs.pop("matcher", None)
    reply = bool(kwargs.pop("reply", False))
    timeout = kwargs.pop("timeout", None)
    limit = kwargs.pop("limit", None)
    callback = kwargs.pop("callback", None)
    if kwargs:
        raise TypeError(f"app.control.{method}() got unexpected arguments {sorted(kwargs)}")
    return reply, timeout, limit, callback


class Inspect:
    """Celery's `app.control.inspect()`: each method returns `{node: reply}` or None."""

    app: Any = None

    def __init__(
        self,
        destination: Sequence[str] | None = None,
        timeout: float | None = 1.0,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        connection: Any = None,
        app: Any = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> None:
        _no_connection("inspect", connection)
        self.app = app or self.app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.connection = connection
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    def _request(
        self, command: str, destination: Sequence[str] | None = None, **arguments: Any
    ) -> Any:
        control = Control(self.app)

        async def ask(c: AsyncControl) -> Any:
            inspect = AsyncInspect(
                c,
                destination=self.destination,
                timeout=self.timeout,
                limit=self.limit,
                callback=self.callback,
                pattern=self.pattern,
                matcher=self.matcher,
            )
            return await inspect.request(command, destination, **arguments)

        return control._run(ask)

    def ping(self, destination: Sequence[str] | None = None) -> Any:
        return self._request("ping", destination)

    def clock(self) -> Any:
        return self._request("clock")

    def active(self, safe: bool | None = None) -> Any:
        return self._request("active", safe=safe)

    def scheduled(self, safe: bool | None = None) -> Any:
        return self._request("scheduled", safe=safe)

    def reserved(self, safe: bool | None = None) -> Any:
        return self._request("reserved", safe=safe)

    def stats(self) -> Any:
        return self._request("stats")

    def revoked(self) -> Any:
        return self._request("revoked")

    def registered(self, *taskinfoitems: str) -> Any:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def active_queues(self) -> Any:
        return self._request("active_queues")

    def report(self) -> Any:
        return self._request("report")

    def hello(self, from_node: str, revoked: Any = None) -> Any:
        return self._request("hello", from_node=from_node, revoked=revoked)

    def query_task(self, *ids: Any) -> Any:
        """Celery workers answer it; hare workers answer `{"error": ...}`."""
        if len(ids) == 1 and not isinstance(ids[0], str):
            ids = tuple(ids[0])
        return self._request("query_task", ids=list(ids))

    def conf(self, with_defaults: bool = False) -> Any:
        """Celery workers answer it; hare workers answer `{"error": ...}`."""
        return self._request("conf", with_defaults=with_defaults)

    def memsample(self) -> Any:
        """Celery workers answer it; hare workers answer `{"error": ...}`."""
        return self._request("memsample")

    def memdump(self, samples: int = 10) -> Any:
        """Celery workers answer it; hare workers answer `{"error": ...}`."""
        return self._request("memdump", samples=samples)

    def objgraph(self, type: str = "Request", n: int = 200, max_depth: int = 10) -> Any:
        """Celery workers answer it; hare workers answer `{"error": ...}`."""
        return self._request("objgraph", num=n, max_depth=max_depth, type=type)
