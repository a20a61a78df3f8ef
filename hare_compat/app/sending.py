"""Celery's `send_task` options -> hare's: routing, then Celery's own names mapped.

The options a message carries go on as they are to hare's one builder
(`hare.core.calls.build_message`), whose rules apply to every way of sending: none are
added here. What is mapped is what only Celery names. `task_routes`, `router=`,
`route_name=` and `task_type=` pick the queue. hare publishes to a queue through the default
exchange, as Celery does for direct exchanges: `exchange=` naming a direct exchange (or the
empty default) and `routing_key=` change nothing in Celery there either, so they are
accepted; anything that would need a topic or fanout exchange is refused. `delivery_mode=2`
is what hare sends. The options of Celery's producer (`retry`, `retry_policy`, `declare`...)
are accepted: hare always waits for the broker's confirm and reconnects until
`publish_timeout`; `add_to_parent` and `result_cls` shape the result handle. `producer=`,
`connection=` and `publisher=` cannot be honoured (hare publishes on its own connection) and
are refused, as is `compression=`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hare.errors import NotSupportedError
from hare_compat.app.routes import Router
from hare_compat.producer_options import PRODUCER_ONLY

__all__ = ("hare_options",)

#: Celery send_task options with nothing to do in hare.
_ACCEPTED = PRODUCER_ONLY | frozenset(
    "add_to_parent result_cls route_name task_type router exchange_type".split()
)
#: `send_task`'s defaults that say nothing (the builder's too), so are not passed on.
_DEFAULTS: Mapping[str, Any] = {"retries": 0, "replaced_task_nesting": 0}
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
    stamps = frozenset(routed.get("stamped_headers") or ())  # a stamp may be None
    hare: dict[str, Any] = {}
    for option, value in routed.items():
        if option == "exchange":
            _check_exchange(value, routed.get("queue"), direct_exchanges)
        elif option == "delivery_mode":
            _check_delivery_mode(value)
        elif option == "routing_key":
            continue  # Celery replaces it by the queue's name for direct exchanges
        elif option in stamps or not (value is None or _DEFAULTS.get(option) == value):
            hare[option] = value  # the builder refuses what it does not know, by name
    if hare.get("priority") is None and default_priority is not None:
        hare["priority"] = int(default_priority)
    return hare


def _check_delivery_mode(value: Any) -> None:
    if value not in (None, 2, "persistent"):
        raise NotSupportedError(f"send_task(delivery_mode={value!r})", "messages are persistent")


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
