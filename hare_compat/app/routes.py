"""Task routing (`task_routes`) and queue declarations (`task_queues`), as Celery does them.

Routes are tried in order and the first that answers wins; a route is a dict (exact names,
`fnmatch` globs such as `"shop.*"`, compiled regexes) whose values are a queue name or a dict
of options, a router function `(name, args, kwargs, options, task=...)`, an old-style object
with `route_for_task(name, args, kwargs)`, a `"module:router"` path, or a list of these.

Precedence is Celery's: an option given to the call (or set on the task, like `queue`) beats
the route, which beats `task_default_queue`.

`task_queues` holds kombu `Queue` objects (duck-typed: `.name`, `.exchange`, `.routing_key`,
`.queue_arguments`, ...) or Celery 3's dict of `name -> options`. hare publishes to a queue
through the default exchange, as Celery does for direct exchanges, so only direct exchanges
are accepted; `x-queue-type` (classic or quorum) is the only queue argument hare can declare.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hare.core.topology import validate_queue_name
from hare.errors import ConfigurationError, NotSupportedError
from hare_compat.app.loader import symbol_by_name
from hare_compat.exceptions import QueueNotFound

__all__ = (
    "AMQP",
    "MapRoute",
    "QueueDecl",
    "Router",
    "declared_queues",
    "prepare",
    "queue_name",
)

Route = dict[str, Any]
RouterFn = Callable[..., Any]

#: kombu `Queue` attributes that become queue arguments hare cannot declare.
_ARGUMENT_ATTRIBUTES = ("max_priority", "message_ttl", "expires", "max_length", "max_length_bytes")


@dataclass(frozen=True, slots=True)
class QueueDecl:
    """A queue of `task_queues`: its name and type (`None`: whatever the app's type is)."""

    name: str
    queue_type: Literal["classic", "quorum"] | None


def queue_name(queue: Any) -> str:
    """The name of a queue given as a name or a kombu-like `Queue` object."""
    name = queue if isinstance(queue, str) else getattr(queue, "name", None)
    if not isinstance(name, str):
        raise ConfigurationError(f"{queue!r} is not a queue name or a Queue")
    return validate_queue_name(name)


def _exchange_type(exchange: Any) -> str:
    if exchange is None or isinstance(exchange, str):
        return "direct"
    kind = getattr(exchange, "type", "direct")
    return kind if isinstance(kind, str) else "direct"


class AMQP:
    """`app.amqp`, the part hare has: `queues`, the app's queues by name (`task_queues`, or
    the default queue when none are configured), as its workers consume them."""

    def __init__(self, conf: Any) -> None:
        self._conf = conf

    @property
    def queues(self) -> dict[str, QueueDecl]:
        declared = declared_queues(self._conf.task_queues)
        if declared:
            return declared
        name = self._conf.task_default_queue
        return {name: _declaration(name, {}, None)}


def _declaration(name: str, options: Mapping[str, Any], queue: Any) -> QueueDecl:
    where = f"task_queues: queue {name!r}"
    exchange_type = options.get("exchange_type") or _exchange_type(options.get("exchange"))
    if exchange_type != "direct":
        raise NotSupportedError(
            f"{where}: a {exchange_type} exchange",
            "hare publishes to queues through the default exchange (direct routing only)",
        )
    for flag, expected in (("durable", True), ("auto_delete", False), ("exclusive", False)):
        if options.get(flag, expected) != expected:
            raise NotSupportedError(f"{where}: {flag}={not expected}", "work queues are durable")
    arguments = dict(options.get("queue_arguments") or {})
    for attribute in _ARGUMENT_ATTRIBUTES:
        if getattr(queue, attribute, None) is not None or options.get(attribute) is not None:
            arguments[attribute] = "set"
    kind = arguments.pop("x-queue-type", None)
    if arguments:
        raise NotSupportedError(
            f"{where}: arguments {sorted(arguments)}",
            "hare declares work queues with x-queue-type only; a queue declared with other "
            "arguments elsewhere would not match",
        )
    if kind not in (None, "classic", "quorum"):
        raise NotSupportedError(f"{where}: x-queue-type {kind!r}", "hare has classic and quorum")
    return QueueDecl(validate_queue_name(name), kind)


def declared_queues(task_queues: Any) -> dict[str, QueueDecl]:
    """`task_queues` (Queue objects, or Celery 3's dict of name -> options) by name."""
    if task_queues is None:
        return {}
    if isinstance(task_queues, Mapping):
        return {
            name: _declaration(name, options or {}, None) for name, options in task_queues.items()
        }
    if isinstance(task_queues, str) or not isinstance(task_queues, Iterable):
        raise ConfigurationError(f"task_queues must list Queue objects, not {task_queues!r}")
    declared = {}
    for queue in task_queues:
        name = queue_name(queue)
        options = {
            "exchange": getattr(queue, "exchange", None),
            "queue_arguments": getattr(queue, "queue_arguments", None),
            "durable": getattr(queue, "durable", True),
            "auto_delete": getattr(queue, "auto_delete", False),
            "exclusive": getattr(queue, "exclusive", False),
        }
        declared[name] = _declaration(name, options, queue)
    return declared


class MapRoute:
    """A router made of a dict: exact names first, then globs and regexes in order."""

    def __init__(self, routes: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        pairs = routes.items() if isinstance(routes, Mapping) else routes
        self.map: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern[str], Any]] = []
        for key, route in pairs:
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif isinstance(key, str) and "*" in key:
                self.patterns.append((re.compile(fnmatch.translate(key)), route))
            elif isinstance(key, str):
                self.map[key] = route
            else:
                raise ConfigurationError(f"task_routes key {key!r} is not a name or a pattern")

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Route | None:
        if name in self.map:
            return _as_route(self.map[name])
        for pattern, route in self.patterns:
            if pattern.match(name):
                return _as_route(route)
        return None


def _as_route(route: Any) -> Route:
    if isinstance(route, Mapping):
        return dict(route)
    return {"queue": route}  # a queue name or a Queue object


class _Lazy:
    """A `"module:router"` path, imported on first use (Celery's `mlazy`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._router: RouterFn | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._router is None:
            found = symbol_by_name(self.path)
            self._router = _old_style(found() if hasattr(found, "route_for_task") else found)
        return self._router(*args, **kwargs)


def _old_style(router: Any) -> RouterFn:
    """Adapt a pre-4.0 router object (`route_for_task(task, args, kwargs)`)."""
    if hasattr(router, "route_for_task"):
        return lambda name, args, kwargs, options, task=None: router.route_for_task(
            name, args, kwargs
        )
    if not callable(router):
        raise ConfigurationError(f"task_routes entry {router!r} is not a router")
    return router  # type: ignore[no-any-return]  # callable() narrows to an untyped callable


def prepare(routes: Any) -> list[RouterFn]:
    """Expand the `task_routes` setting into router callables."""
    if routes is None:
        return []
    if not isinstance(routes, list | tuple):
        routes = (routes,)
    prepared: list[RouterFn] = []
    for route in routes:
        if isinstance(route, Mapping | list | tuple):
            prepared.append(MapRoute(route))
        elif isinstance(route, str):
            prepared.append(_Lazy(route))
        else:
            prepared.append(_old_style(route))
    return prepared


class Router:
    """Decides the queue (and route options) of each message, as Celery's `Router`."""

    def __init__(
        self,
        routes: Sequence[RouterFn],
        queues: Mapping[str, QueueDecl],
        *,
        default_queue: str,
        create_missing: bool = True,
    ) -> None:
        self.routes = list(routes)
        self.queues = queues
        self.default_queue = default_queue
        self.create_missing = create_missing

    def route(
        self,
        options: Mapping[str, Any],
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        task_type: Any = None,
    ) -> Route:
        """The options of one message: `options` with the route's merged in, `queue` a name."""
        options = self._expand(dict(options))
        for router in self.routes:
            found = router(name, tuple(args), dict(kwargs or {}), dict(options), task=task_type)
            if found is not None:
                # Celery's lpmerge: the call's options win unless they are None.
                given = {key: value for key, value in options.items() if value is not None}
                options = self._expand(_as_route(found)) | given
                break
        if options.get("queue") is None:
            options["queue"] = self._queue(self.default_queue)
        return options

    def _expand(self, route: Route) -> Route:
        queue = route.get("queue")
        if queue is not None:
            route["queue"] = self._queue(queue)
        return route

    def _queue(self, queue: Any) -> str:
        name = queue_name(queue)
        if isinstance(queue, str) and not self.create_missing and name not in self.queues:
            raise QueueNotFound(f"Queue {name!r} missing from task_queues")
        return name
