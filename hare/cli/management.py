"""RabbitMQ's management API, read for `hare status` (per queue ready, unacked and consumers)
and `hare events --orphans` (the bindings of the events exchange).

AMQP alone tells a queue's ready messages and consumers (a passive declare), not how many
are delivered and unacknowledged; only the management plugin (`rabbitmq_management`, HTTP on
port 15672) does. It may not be enabled, or not reachable from where `hare status` runs:
then `fetch` says why, and the caller says so instead of guessing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ("Binding", "QueueStats", "fetch", "fetch_bindings", "management_url")

#: How long `hare status` waits for the management API.
TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Binding:
    """A binding of an exchange to a queue, as the management API lists it."""

    queue: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class QueueStats:
    ready: int
    unacked: int
    consumers: int
    #: Messages per second published to and delivered from the queue (None: not reported).
    publish_rate: float | None = None
    deliver_rate: float | None = None


def management_url(broker_url: str) -> str:
    """The management API's base URL for the (first) broker: same host, port 15672.

    >>> management_url("amqp://u:pw@rabbit:5672/prod")
    'http://rabbit:15672'
    """
    first = urlsplit(broker_url.split(";")[0].strip())
    host = first.hostname or "localhost"
    return f"http://{'[' + host + ']' if ':' in host else host}:15672"


async def fetch(base: str, broker_url: str) -> dict[str, QueueStats] | str:
    """Every queue of the broker URL's vhost, by name; or, as text, why the API did not say.

    `base` is the API's URL (`management_url`), credentials in it or else the broker's."""
    return await asyncio.to_thread(_fetch, base, broker_url)


def _fetch(base: str, broker_url: str) -> dict[str, QueueStats] | str:
    columns = (
        "?columns=name,messages_ready,messages_unacknowledged,consumers,"
        "message_stats.publish_details.rate,message_stats.deliver_get_details.rate"
    )
    rows = _get(base, broker_url, "queues/{vhost}" + columns)
    if isinstance(rows, str):
        return rows
    return {str(row.get("name")): _stats(row) for row in rows if isinstance(row, dict)}


async def fetch_bindings(base: str, broker_url: str, exchange: str) -> list[Binding] | str:
    """The bindings whose source is `exchange` in the broker URL's vhost; or, as text, why the
    API did not say (as `fetch`). For `hare events list --orphans`."""
    path = "exchanges/{vhost}/" + quote(exchange, safe="") + "/bindings/source"
    rows = await asyncio.to_thread(_get, base, broker_url, path)
    if isinstance(rows, str):
        return rows
    return [
        Binding(str(row.get("destination")), str(row.get("routing_key")))
        for row in rows
        if isinstance(row, dict) and row.get("destination_type") == "queue"
    ]


def _get(base: str, broker_url: str, path: str) -> list[Any] | str:
    """GET `path` (with `{vhost}` for the broker URL's vhost) from the management API: its
    JSON list, or why there is none."""
    broker = urlsplit(broker_url.split(";")[0].strip())
    vhost = unquote(broker.path[1:]) or "/"
    address = urlsplit(base)
    user = unquote(address.username or broker.username or "guest")
    password = unquote(address.password or broker.password or "guest")
    plain = f"{address.scheme}://{address.netloc.rpartition('@')[2]}{address.path.rstrip('/')}"
    url = f"{plain}/api/" + path.format(vhost=quote(vhost, safe=""))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            rows = json.load(response)
    except urllib.error.HTTPError as exc:
        return f"the management API at {plain} answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no management API at {plain} ({reason})"
    except ValueError:
        return f"the management API at {plain} did not answer JSON"
    return (
        rows if isinstance(rows, list) else f"the management API at {plain} did not answer a list"
    )


def _stats(row: dict[str, Any]) -> QueueStats:
    def number(key: str) -> int:
        value = row.get(key)
        return value if isinstance(value, int) else 0

    def rate(kind: str) -> float | None:
        stats = row.get("message_stats")
        details = stats.get(kind) if isinstance(stats, dict) else None
        value = details.get("rate") if isinstance(details, dict) else None
        return float(value) if isinstance(value, int | float) else None

    return QueueStats(
        ready=number("messages_ready"),
        unacked=number("messages_unacknowledged"),
        consumers=number("consumers"),
        publish_rate=rate("publish_details"),
        deliver_rate=rate("deliver_get_details"),
    )
