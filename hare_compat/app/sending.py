"""Celery's `send_task` options -> hare's: routing, then each option mapped or refused.

hare publishes to a queue through the default exchange, as Celery does for direct
exchanges: `exchange=` naming a direct exchange (or the empty default) and `routing_key=`
change nothing in Celery there either, so they are accepted; anything that would need a
topic or fanout exchange is refused. Options that only steer Celery's producer (`retry`,
`retry_policy`, `declare`, `add_to_parent`...) are accepted: hare always waits for the
broker's confirm and reconnects until `publish_timeout`. `producer=`, `connection=` and
`publisher=` cannot be honoured (hare publishes on its own connection) and are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hare.errors import NotSupportedError
from hare_compat.app.routes import Router
from hare_compat.canvas_stamping import stamps_of

__all__ = ("PRODUCER_ONLY", "hare_options")

#: Options hare's `send_task` takes as they are.
_PASSED = frozenset(
    "task_id countdown eta expires priority headers ignore_result shadow time_limit"
    " soft_time_limit link link_error chain chord group_id group_index root_id parent_id"
    " reply_to argsrepr kwargsrepr".split()
)
#: Options of Celery's producer, with nothing to do in hare: it always waits for the
#: broker's confirm and reconnects until publish_timeout (tasks, retries and workflows).
PRODUCER_ONLY = frozenset("retry retry_policy declare mandatory immediate".split())
#: Celery send_task options with nothing to do in hare.
_ACCEPTED = PRODUCER_ONLY | frozenset(
    "add_to_parent result_cls route_name task_type router exchange_type".split()
)
_REFUSED = {
    "producer": "hare publishes on its own connection",
    "connection": "hare publishes on its own connection",
    "publisher": "hare publishes on its own connection",
    "compression": "hare does not compress messages",
}


def hare_options(
    name: str,
    args: Any,
    kwargs: Any,
    options: Mapping[str, Any],
    *,
    router: Router,
    serializer: str,
    default_priority: Any = None,
    direct_exchanges: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The options of hare's `send_task(name, ...)` for Celery's `send_task(name, **options)`."""
    for option, why in _REFUSED.items():
        if options.get(option) is not None:
            raise NotSupportedError(f"send_task({option}=)", why)
    route_name = options.get("route_name") or name
    task_type = options.get("task_type")
    routing = options.get("router") or router
    given = {k: v for k, v in options.items() if k not in _ACCEPTED and k not in _REFUSED}
    routed = routing.route(given, route_name, args or (), kwargs or {}, task_type)
    hare: dict[str, Any] = {}
    stamps = stamps_of(routed)
    if routed.get("stamped_headers"):
        # Celery's client sends the stamps in the headers: their names and their values.
        names = list(routed["stamped_headers"])
        extra = {"stamped_headers": names, "stamps": stamps}
        hare["headers"] = {**(routed.get("headers") or {}), **extra}
    for option, value in routed.items():
        if (
            option in stamps
            or option == "stamped_headers"
            or (option == "headers" and "headers" in hare)
        ):
            continue
        if option in _PASSED or option == "queue":
            if value is not None:
                hare[option] = value
        elif option == "exchange":
            _check_exchange(value, routed.get("queue"), direct_exchanges)
        elif option in _CHECKS:
            _CHECKS[option](value, serializer)
        elif value is not None:
            hare[option] = value  # hare's send_task refuses what it does not know, by name
    if hare.get("priority") is None and default_priority is not None:
        hare["priority"] = int(default_priority)
    return hare


def _check_serializer(value: Any, serializer: str) -> None:
    if value not in (None, serializer):
        raise NotSupportedError(
            f"send_task(serializer={value!r})",
            f"hare sends every message of an app with task_serializer ({serializer!r})",
        )


def _check_delivery_mode(value: Any, serializer: str) -> None:
    if value not in (None, 2, "persistent"):
        raise NotSupportedError(f"send_task(delivery_mode={value!r})", "messages are persistent")


def _refuse_if_set(option: str, why: str) -> Callable[[Any, str], None]:
    def check(value: Any, serializer: str) -> None:
        if value:
            raise NotSupportedError(f"send_task({option}={value!r})", why)

    return check


_CHECKS: Mapping[str, Callable[[Any, str], None]] = {
    # Celery replaces routing_key by the queue name for direct exchanges: nothing to do.
    "routing_key": lambda value, serializer: None,
    "serializer": _check_serializer,
    "delivery_mode": _check_delivery_mode,
    "retries": _refuse_if_set("retries", "the worker counts retries"),
    "replaced_task_nesting": _refuse_if_set("replaced_task_nesting", "set by the worker"),
    "stamps": _refuse_if_set("stamps", "stamp with sig.stamp() or stamped_headers="),
}


def _check_exchange(exchange: Any, queue: Any, direct: frozenset[str]) -> None:
    name = exchange if isinstance(exchange, str) or exchange is None else exchange.name
    kind = "direct" if isinstance(exchange, str) or exchange is None else exchange.type
    if kind == "direct" and (name in ("", None, queue) or name in direct):
        return
    raise NotSupportedError(
        f"send_task(exchange={name!r})",
        "hare publishes to queues (name queue=); only the default or a direct exchange of "
        "task_queues is accepted",
    )
