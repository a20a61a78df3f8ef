"""Celery's remote-control wire format ("pidbox"), so `celery inspect` sees hare workers.

Pure: building declarations, encoding and decoding messages, and deciding whether a request is
for a node do no I/O; `hare.control` and `hare.control.server` send and receive them.

The topology is kombu 5.7's `Mailbox` with Celery's defaults (`control_exchange="celery"`,
`control_queue_ttl=300`, `control_queue_expires=10`, exclusive queues), declared with the same
arguments so neither side gets PRECONDITION_FAILED:

* requests are broadcast on the fanout exchange `celery.pidbox` (not durable);
* each node consumes its own `<nodename>.celery.pidbox` (exclusive, auto-delete, not durable,
  `x-expires` 10 s, `x-message-ttl` 300 s), bound with routing key "";
* replies go to the direct exchange `reply.celery.pidbox` with the routing key the request's
  `reply_to` names; the client reads them from `<oid>.reply.celery.pidbox` (same arguments).

A request body is JSON `{method, arguments, destination, pattern, matcher, ticket, reply_to:
{exchange, routing_key}}` with headers `clock` (a Lamport clock) and `expires` (epoch seconds,
0 for none). A reply body is `{<nodename>: <reply>}` with headers `ticket` and `clock`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hare.core.codec import json_dumps, json_loads
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import MalformedMessage

__all__ = (
    "CONTENT_TYPE",
    "PERSISTED",
    "DEFAULT_NAMESPACE",
    "LamportClock",
    "ReplyTo",
    "Request",
    "control_exchange",
    "decode_reply",
    "decode_request",
    "default_nodename",
    "expand_nodename",
    "queue_as_dict",
    "encode_reply",
    "encode_request",
    "flatten_replies",
    "is_addressed_to",
    "is_expired",
    "node_binding",
    "node_queue",
    "reply_binding",
    "reply_exchange",
    "reply_queue",
)

#: Celery's `control_exchange` default: the names below all derive from it.
#: The argument hare's `Control.revoke` adds to a revoke it already wrote to the stream.
#: (Celery's revoke handler takes `**kwargs`, so Celery workers ignore it.)
PERSISTED = "hare_persisted"
DEFAULT_NAMESPACE = "celery"
CONTENT_TYPE = "application/json"
#: kombu's Mailbox arguments with Celery's defaults, in milliseconds as RabbitMQ takes them.
QUEUE_TTL_MS = 300_000
QUEUE_EXPIRES_MS = 10_000


# -- topology -------------------------------------------------------------------------------


def control_exchange(namespace: str = DEFAULT_NAMESPACE) -> Exchange:
    """The fanout exchange requests are broadcast on: `celery.pidbox`."""
    return Exchange(name=f"{namespace}.pidbox", type="fanout", durable=False)


def reply_exchange(namespace: str = DEFAULT_NAMESPACE) -> Exchange:
    """The direct exchange replies go to: `reply.celery.pidbox`."""
    return Exchange(name=f"reply.{namespace}.pidbox", type="direct", durable=False)


def _mailbox_queue(name: str) -> Queue:
    return Queue(
        name=name,
        durable=False,
        exclusive=True,
        auto_delete=True,
        arguments={"x-expires": QUEUE_EXPIRES_MS, "x-message-ttl": QUEUE_TTL_MS},
    )


def node_queue(nodename: str, namespace: str = DEFAULT_NAMESPACE) -> Queue:
    """A node's own request queue, `<nodename>.celery.pidbox`, as a Celery 5.7 worker has it."""
    return _mailbox_queue(f"{nodename}.{namespace}.pidbox")


def node_binding(nodename: str, namespace: str = DEFAULT_NAMESPACE) -> Binding:
    return Binding(
        exchange=control_exchange(namespace).name,
        destination=node_queue(nodename, namespace).name,
        routing_key="",
    )


def reply_queue(oid: str, namespace: str = DEFAULT_NAMESPACE) -> Queue:
    """A client's reply queue, `<oid>.reply.celery.pidbox`, as kombu declares it."""
    return _mailbox_queue(f"{oid}.reply.{namespace}.pidbox")


def reply_binding(oid: str, namespace: str = DEFAULT_NAMESPACE) -> Binding:
    return Binding(
        exchange=reply_exchange(namespace).name,
        destination=reply_queue(oid, namespace).name,
        routing_key=oid,
    )


def expand_nodename(template: str, hostname: str, index: int | None = None) -> str:
    """A worker's node name from `hare worker -n` as Celery expands `celery worker -n`: `%h`
    the host name, `%n` its first label, `%d` the rest (the domain), `%i` the process index
    of `--processes` (0 without), `%%` a percent sign; `@<host>` is added when the name has
    none. With `--processes` (`index` given) a name without `%i` gets `-<index>` after its
    name part, so that every process has a node name of its own."""
    name, _, domain = hostname.partition(".")
    if index is not None and "%i" not in template:
        head, at, tail = template.partition("@")
        template = f"{head}-%i{at}{tail}"
    expanded = (
        template.replace("%%", "\0")
        .replace("%h", hostname)
        .replace("%n", name)
        .replace("%d", domain)
        .replace("%i", str(index or 0))
        .replace("\0", "%")
    )
    return expanded if "@" in expanded else f"{expanded}@{hostname}"


def queue_as_dict(
    name: str, *, exchange: str = "", exchange_type: str = "direct", routing_key: str | None = None
) -> dict[str, Any]:
    """A queue in kombu's `Queue.as_dict(recurse=True)` shape (`inspect active_queues`).

    hare publishes to the default exchange with the queue's name as the routing key; a
    hare_compat app reports the exchange Celery declares for it.
    """
    return {
        "name": name,
        "exchange": {
            "name": exchange,
            "type": exchange_type,
            "arguments": None,
            "durable": True,
            "passive": False,
            "auto_delete": False,
            "delivery_mode": None,
            "no_declare": False,
        },
        "routing_key": name if routing_key is None else routing_key,
        "queue_arguments": None,
        "binding_arguments": None,
        "consumer_arguments": None,
        "durable": True,
        "exclusive": False,
        "auto_delete": False,
        "no_ack": False,
        "alias": None,
        "bindings": [],
        "no_declare": None,
        "expires": None,
        "message_ttl": None,
        "max_length": None,
        "max_length_bytes": None,
        "max_priority": None,
    }


def default_nodename(hostname: str) -> str:
    """`hare@<hostname>`, as Celery's default is `celery@<hostname>`."""
    return f"hare@{hostname}"


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where a request wants its replies: an exchange and a routing key."""

    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A control request as a node receives it."""

    method: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    destination: tuple[str, ...] | None = None
    pattern: str | None = None
    matcher: str | None = None
    ticket: str | None = None
    reply_to: ReplyTo | None = None
    #: The sender's Lamport clock (header `clock`).
    clock: int = 0
    #: Epoch seconds after which nobody waits for the reply (header `expires`; None: never).
    expires: float | None = None


def encode_request(
    method: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    destination: Sequence[str] | None = None,
    ticket: str | None = None,
    reply_to: ReplyTo | None = None,
    pattern: str | None = None,
    matcher: str | None = None,
) -> bytes:
    """The body kombu's `Mailbox._publish` sends."""
    body: dict[str, Any] = {
        "method": method,
        "arguments": dict(arguments or {}),
        "destination": list(destination) if destination is not None else None,
        "pattern": pattern,
        "matcher": matcher,
    }
    if ticket is not None and reply_to is not None:
        body["ticket"] = ticket
        body["reply_to"] = {"exchange": reply_to.exchange, "routing_key": reply_to.routing_key}
    return json_dumps(body)


def decode_request(
    body: bytes, headers: Mapping[str, Any], content_type: str | None = CONTENT_TYPE
) -> Request:
    """Parse a request; `MalformedMessage` says what is wrong with one that cannot be read."""
    if content_type not in (CONTENT_TYPE, None):
        raise MalformedMessage(f"control request in {content_type!r}: hare reads JSON only")
    try:
        data = json_loads(body)
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"control request is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedMessage(f"control request is a {type(data).__name__}, not an object")
    method = data.get("method")
    if not isinstance(method, str) or not method:
        raise MalformedMessage(f"control request without a method: {data.get('method')!r}")
    arguments = data.get("arguments") or {}
    if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
        raise MalformedMessage(f"control request {method!r}: arguments must be an object")
    destination = data.get("destination")
    if destination is not None:
        if not isinstance(destination, list | tuple) or not all(
            isinstance(d, str) for d in destination
        ):
            raise MalformedMessage(f"control request {method!r}: destination must be names")
        destination = tuple(destination)
    return Request(
        method=method,
        arguments=arguments,
        destination=destination or None,  # [] means everyone, as kombu reads it
        pattern=_optional_str(data, "pattern", method),
        matcher=_optional_str(data, "matcher", method),
        ticket=_optional_str(data, "ticket", method),
        reply_to=_reply_to(data.get("reply_to"), method),
        clock=_number(headers.get("clock"), int, 0),
        expires=_number(headers.get("expires"), float, 0.0) or None,
    )


def _optional_str(data: Mapping[str, Any], key: str, method: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedMessage(f"control request {method!r}: {key} must be a string")


def _reply_to(value: Any, method: str) -> ReplyTo | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        exchange, key = value.get("exchange"), value.get("routing_key")
        if isinstance(exchange, str) and isinstance(key, str):
            return ReplyTo(exchange, key)
    raise MalformedMessage(
        f"control request {method!r}: reply_to must be {{exchange, routing_key}}"
    )


_N = TypeVar("_N", int, float)


def _number(value: Any, kind: type[_N], default: _N) -> _N:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return kind(value)


def is_addressed_to(request: Request, nodename: str) -> bool:
    """Whether `nodename` handles `request`, as kombu's `Node.handle_message` decides.

    A destination list wins; else a pattern with a matcher (`glob`: fnmatch, `pcre`:
    `re.match`); else everyone. An unknown matcher addresses nobody.
    """
    if request.destination:
        return nodename in request.destination
    if request.pattern and request.matcher:
        if request.matcher == "glob":
            return fnmatch.fnmatchcase(nodename, request.pattern)
        if request.matcher == "pcre":
            try:
                return re.match(request.pattern, nodename) is not None
            except re.error:
                return False
        return False
    return True


def is_expired(request: Request, now: float, *, tolerance: float) -> bool:
    """Whether nobody waits for the reply any more: `expires` passed by over `tolerance` s.

    The tolerance absorbs clock skew between the client's host and this one: `expires` is the
    client's clock plus its timeout (one second by default), so without it a node whose clock
    runs two seconds ahead would ignore every request.
    """
    return request.expires is not None and now > request.expires + tolerance


# -- replies --------------------------------------------------------------------------------


def encode_reply(nodename: str, reply: Any) -> bytes:
    """A reply body: `{nodename: reply}`."""
    return json_dumps({nodename: reply})


def decode_reply(body: bytes) -> dict[str, Any]:
    """A reply body as `{nodename: reply}`; `MalformedMessage` if it is not one."""
    try:
        data = json_loads(body)
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"control reply is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise MalformedMessage("control reply is not an object keyed by node names")
    return data


def flatten_replies(replies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`[{a: r1}, {b: r2}]` as `{a: r1, b: r2}` (Celery's `flatten_reply`)."""
    nodes: dict[str, Any] = {}
    for reply in replies:
        nodes.update(reply)
    return nodes


class LamportClock:
    """Celery's logical clock: forward on every send, catch up with every clock received."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def forward(self) -> int:
        self.value += 1
        return self.value

    def adjust(self, other: int) -> int:
        self.value = max(self.value, other) + 1
        return self.value
