"""Celery's events on the wire: fields, body, properties, routing key, exchange. Pure.

An event is a flat JSON object (Celery's `celery.events.Event`): `type` (`worker-heartbeat`,
`task-succeeded`...), `timestamp` (epoch seconds), and what the dispatcher adds to every
event: `hostname` (the worker's node name), `utcoffset` (hours, as Celery's
`celery.utils.time.utcoffset` computes them), `pid` and `clock` (the Lamport clock the worker
shares with its pidbox). Task events add `uuid` and their own fields.

It is published to the topic exchange `celeryev` (durable, as kombu declares it) with the
routing key the type with dots (`task.succeeded`), JSON in UTF-8, transient
(`delivery_mode=1`), with the header `hostname`, as Celery's `EventDispatcher` publishes it.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hare._version import __version__
from hare.core.codec import json_dumps
from hare.core.envelope import Envelope, Properties
from hare.core.message import Message
from hare.core.reprs import safe_repr
from hare.core.topology import Exchange

__all__ = (
    "EXCHANGE",
    "HEARTBEAT_SECONDS",
    "SOFTWARE",
    "envelope",
    "event",
    "received_fields",
    "routing_key",
    "utcoffset",
)

#: Celery's `event_exchange`: a durable topic exchange (kombu's defaults).
EXCHANGE = Exchange(name="celeryev", type="topic", durable=True)
#: Celery's default heartbeat interval (`freq`). Celery's event state (Flower's) counts a
#: worker alive until `freq` * 2 seconds (its expire window of 200 %) after its last one.
HEARTBEAT_SECONDS = 2.0
#: The software fields of worker events (Celery's `SOFTWARE_INFO`, with hare's name).
SOFTWARE: Mapping[str, str] = {
    "sw_ident": "hare",
    "sw_ver": __version__,
    "sw_sys": platform.system(),
}


def utcoffset(is_dst: bool, timezone: int, altzone: int) -> float:
    """Celery's `utcoffset()`: hours west of UTC, from `time.timezone`/`time.altzone`."""
    return (altzone if is_dst else timezone) / 3600


def event(type_: str, timestamp: float, **fields: Any) -> dict[str, Any]:
    """An event of `type_` at `timestamp`, as `celery.events.Event(type_, **fields)`."""
    return {**fields, "timestamp": timestamp, "type": type_}


def routing_key(type_: str) -> str:
    """The routing key Celery publishes an event of `type_` with: `task-sent` -> `task.sent`."""
    return type_.replace("-", ".")


def envelope(body: Mapping[str, Any], hostname: str) -> Envelope:
    """`body` (an event) as Celery's dispatcher publishes it."""
    return Envelope(
        exchange=EXCHANGE.name,
        routing_key=routing_key(str(body["type"])),
        body=json_dumps(body),
        properties=Properties(
            content_type="application/json",
            content_encoding="utf-8",
            headers={"hostname": hostname},
            delivery_mode=1,
            priority=0,
        ),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def received_fields(message: Message) -> dict[str, Any]:
    """The fields of `task-received` for `message` (Celery's strategy): the args and kwargs
    as their reprs (the message's own `argsrepr`/`kwargsrepr` when it has them, which a
    client sets to hide secrets)."""
    args = safe_repr(message.args) if message.argsrepr is None else message.argsrepr
    kwargs = safe_repr(message.kwargs) if message.kwargsrepr is None else message.kwargsrepr
    return {
        "uuid": message.id,
        "name": message.shadow or message.task,
        "args": args,
        "kwargs": kwargs,
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "retries": message.retries,
        "eta": _iso(message.eta),
        "expires": _iso(message.expires),
    }
