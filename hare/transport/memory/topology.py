"""Declarations and routing for the in-memory broker, mirroring RabbitMQ 3.10.

Pure: no I/O, no asyncio, no clock. Declaring validates and compares arguments the way
RabbitMQ's `rabbit_amqqueue:declare_args/0` and `rabbit_exchange:assert_args_equivalence/2` do,
and an `ExchangeRoutes` answers which queues and exchanges a message goes to. The broker in
`memory_broker.py` builds on this; nothing here is public API.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hare.core.topology import Binding, Exchange, Queue
from hare.errors import NotSupportedError, TopologyMismatch

__all__ = (
    "ExchangeRoutes",
    "Overflow",
    "QueueSettings",
    "check_exchange_equivalence",
    "check_queue_equivalence",
    "parse_expiration",
    "queue_settings",
    "topic_matches",
)

Overflow = Literal["drop-head", "reject-publish", "reject-publish-dlx"]

#: The largest TTL RabbitMQ accepts, for queues and messages alike: ten years of 365 days
#: (measured on 3.10.8, research/delays.md §3.1); one more is PRECONDITION_FAILED.
MAX_TTL_MS = 315_360_000_000

#: The queue arguments RabbitMQ compares on redeclare (`rabbit_amqqueue:declare_args/0`, plus
#: the quorum-only ones, measured on 3.10.8). Any other argument is stored but never compared,
#: so redeclaring with a different `foo` succeeds there as it does here.
_COMPARED_QUEUE_ARGS = frozenset(
    {
        "x-expires",
        "x-message-ttl",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-max-priority",
        "x-overflow",
        "x-queue-mode",
        "x-single-active-consumer",
        "x-queue-type",
        "x-quorum-initial-group-size",
        "x-max-age",
        "x-initial-cluster-size",
        "x-queue-leader-locator",
        "x-stream-max-segment-size-bytes",
    }
)
_COMPARED_QUORUM_ARGS = frozenset({"x-delivery-limit", "x-dead-letter-strategy"})
#: Arguments whose behaviour the memory broker does not reproduce: refused, never ignored.
_UNSUPPORTED_ARGS = {
    "x-max-priority": "the memory transport keeps queues FIFO, without priorities",
}
#: What a stream's declaration may carry here: its retention by age, and arguments that only
#: place or size its storage on RabbitMQ (compared on redeclare, without effect in memory).
_STREAM_ARGS = frozenset(
    {
        "x-queue-type",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-initial-cluster-size",
        "x-queue-leader-locator",
    }
)
#: `x-max-age` units (RabbitMQ's `rabbit_amqqueue:check_max_age/1`), in milliseconds.
_AGE_UNITS = {
    "Y": 365 * 86_400_000,
    "M": 30 * 86_400_000,
    "D": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
}
_AGE = re.compile(r"([0-9]+)([YMDhms])")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_OVERFLOWS: frozenset[str] = frozenset({"drop-head", "reject-publish", "reject-publish-dlx"})


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """What a queue's arguments mean to the broker."""

    quorum: bool = False
    #: An append-only log that consumers read from an offset (`x-queue-type: stream`).
    stream: bool = False
    #: A stream keeps messages at least this long (`x-max-age`), then drops them.
    max_age_ms: int | None = None
    #: An unused queue is deleted after this long (`x-expires`).
    expires_ms: int | None = None
    message_ttl_ms: int | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: Overflow = "drop-head"
    delivery_limit: int | None = None
    single_active_consumer: bool = False


def queue_settings(queue: Queue) -> QueueSettings:
    """Validate `queue`'s arguments as RabbitMQ does and say what they mean.

    Raises `TopologyMismatch` for what RabbitMQ refuses with PRECONDITION_FAILED (406).
    """
    args = queue.arguments
    queue_type = args.get("x-queue-type", "classic")
    if queue_type not in ("classic", "quorum", "stream"):
        raise _invalid(queue, "x-queue-type", queue_type)
    quorum = queue_type == "quorum"
    if queue_type != "classic" and (not queue.durable or queue.exclusive or queue.auto_delete):
        # Quorum queues and streams are replicated: RabbitMQ refuses "invalid property
        # 'non-durable'", 'exclusive-owner' and 'auto-delete' (measured on 3.10.8).
        raise TopologyMismatch(
            f"PRECONDITION_FAILED - invalid property for {queue_type} queue {queue.name!r}"
        )
    if queue_type == "stream":
        return _stream_settings(queue)
    for unsupported, why in _UNSUPPORTED_ARGS.items():
        if unsupported in args:
            raise NotSupportedError(unsupported, why)
    if "x-dead-letter-routing-key" in args and "x-dead-letter-exchange" not in args:
        raise TopologyMismatch(
            "PRECONDITION_FAILED - x-dead-letter-routing-key requires x-dead-letter-exchange"
        )
    overflow = args.get("x-overflow", "drop-head")
    if overflow not in _OVERFLOWS or (quorum and overflow == "reject-publish-dlx"):
        raise _invalid(queue, "x-overflow", overflow)
    ttl = _int_arg(queue, "x-message-ttl", maximum=MAX_TTL_MS)
    expires = _int_arg(queue, "x-expires", maximum=MAX_TTL_MS)
    if expires == 0:
        raise _invalid(queue, "x-expires", expires, "must be positive")
    limit = _int_arg(queue, "x-delivery-limit")
    single = args.get("x-single-active-consumer", False)
    if not isinstance(single, bool):
        raise _invalid(queue, "x-single-active-consumer", single)
    return QueueSettings(
        quorum=quorum,
        expires_ms=expires,
        message_ttl_ms=ttl,
        dead_letter_exchange=_str_arg(queue, "x-dead-letter-exchange"),
        dead_letter_routing_key=_str_arg(queue, "x-dead-letter-routing-key"),
        max_length=_int_arg(queue, "x-max-length"),
        max_length_bytes=_int_arg(queue, "x-max-length-bytes"),
        overflow=overflow,
        # Classic queues have no delivery limit; the argument is inert on them.
        delivery_limit=limit if quorum else None,
        single_active_consumer=single,
    )


def _stream_settings(queue: Queue) -> QueueSettings:
    for key in queue.arguments:
        if key not in _STREAM_ARGS:
            raise NotSupportedError(
                f"{key} on a stream", "the memory transport's streams take x-max-age only"
            )
    age = queue.arguments.get("x-max-age")
    if age is None:
        return QueueSettings(stream=True)
    found = _AGE.fullmatch(age) if isinstance(age, str) else None
    if found is None:
        raise _invalid(queue, "x-max-age", age, "expected e.g. '7D', '12h', '30m', '10s'")
    return QueueSettings(stream=True, max_age_ms=int(found.group(1)) * _AGE_UNITS[found.group(2)])


def check_queue_equivalence(existing: Queue, wanted: Queue) -> None:
    """Raise `TopologyMismatch` if redeclaring `existing` as `wanted` is refused (406)."""
    for flag in ("durable", "auto_delete", "exclusive"):
        if getattr(existing, flag) != getattr(wanted, flag):
            raise _inequivalent(existing.name, flag, getattr(wanted, flag), getattr(existing, flag))
    old, new = _normalised_queue_args(existing), _normalised_queue_args(wanted)
    compared = _COMPARED_QUEUE_ARGS
    if old.get("x-queue-type") == "quorum":
        compared = compared | _COMPARED_QUORUM_ARGS
    for key in sorted(compared):
        if _typed(old.get(key)) != _typed(new.get(key)):
            raise _inequivalent(existing.name, key, new.get(key), old.get(key))


def check_exchange_equivalence(existing: Exchange, wanted: Exchange) -> None:
    """Raise `TopologyMismatch` if redeclaring `existing` as `wanted` is refused (406).

    RabbitMQ compares the type, the flags and, of all arguments, only `alternate-exchange`.
    """
    for field in ("type", "durable", "auto_delete", "internal"):
        if getattr(existing, field) != getattr(wanted, field):
            raise _inequivalent(
                existing.name, field, getattr(wanted, field), getattr(existing, field)
            )
    old = existing.arguments.get("alternate-exchange")
    new = wanted.arguments.get("alternate-exchange")
    if _typed(old) != _typed(new):
        raise _inequivalent(existing.name, "alternate-exchange", new, old)


def parse_expiration(expiration: str | None) -> int | None:
    """The per-message TTL in ms, or `None`; raise `ValueError` where RabbitMQ refuses it."""
    if expiration is None:
        return None
    text = expiration
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"PRECONDITION_FAILED - invalid expiration {expiration!r}: no_integer")
    value = int(text)
    if value < 0:
        raise ValueError(f"PRECONDITION_FAILED - invalid expiration {expiration!r}: value_negative")
    if value > MAX_TTL_MS:
        raise ValueError(
            f"PRECONDITION_FAILED - invalid expiration {expiration!r}: value_too_large"
        )
    return value


class ExchangeRoutes:
    """One exchange's declaration and the bindings whose source it is."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.bindings: list[Binding] = []
        self._direct: dict[str, list[Binding]] = {}

    @property
    def alternate(self) -> str | None:
        value = self.exchange.arguments.get("alternate-exchange")
        return value if isinstance(value, str) else None

    def add(self, binding: Binding) -> None:
        if any(_same_binding(binding, other) for other in self.bindings):
            return  # binding twice is a no-op in AMQP
        self.bindings.append(binding)
        self._direct.setdefault(binding.routing_key, []).append(binding)

    def remove_destination(self, name: str, *, to_exchange: bool) -> bool:
        """Drop every binding to `name`; whether any was dropped."""
        kept = [
            b for b in self.bindings if not (b.destination == name and b.to_exchange == to_exchange)
        ]
        if len(kept) == len(self.bindings):
            return False
        self.bindings = kept
        self._direct = {}
        for binding in kept:
            self._direct.setdefault(binding.routing_key, []).append(binding)
        return True

    def match(self, routing_key: str, headers: Mapping[str, Any]) -> list[Binding]:
        """The bindings a message with this routing key and headers follows."""
        kind = self.exchange.type
        if kind == "direct":
            return self._direct.get(routing_key, [])
        if kind == "fanout":
            return self.bindings
        if kind == "topic":
            return [b for b in self.bindings if topic_matches(b.routing_key, routing_key)]
        return [b for b in self.bindings if _headers_match(b.arguments, headers)]


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding `pattern` matches `routing_key` as RabbitMQ's trie does.

    Words are separated by dots and may be empty (`a..b` is three words); the empty key has no
    words, so `*` does not match it and `#` does. `*` is exactly one word, `#` zero or more.
    Checked against RabbitMQ 3.10.8 (see tests/transport/test_memory.py).
    """
    # Written as ".w1.w2..." every word is a dot and its text, and the empty key is empty.
    return _topic_regex(pattern).fullmatch("." + routing_key if routing_key else "") is not None


@functools.lru_cache(maxsize=4096)
def _topic_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for word in pattern.split(".") if pattern else []:
        if word == "#":
            if parts and parts[-1] == _ANY_WORDS:
                continue  # "#.#" is "#": one is enough, and it keeps backtracking linear
            parts.append(_ANY_WORDS)
        elif word == "*":
            parts.append(r"\.[^.]*")
        else:
            parts.append(r"\." + re.escape(word))
    return re.compile("".join(parts))


_ANY_WORDS = r"(?:\.[^.]*)*"


def _headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any]) -> bool:
    # rabbit_exchange_type_headers: x-match all (default) / any; the -with-x variants (3.10)
    # also compare keys starting with "x-". A void (None) binding value matches on presence.
    mode = arguments.get("x-match", "all")
    with_x = str(mode).endswith("-with-x")
    wanted = {
        k: v for k, v in arguments.items() if k != "x-match" and (with_x or not k.startswith("x-"))
    }
    if not wanted:
        return mode in ("all", "all-with-x")
    hits = (
        k in headers and (v is None or _typed(headers[k]) == _typed(v)) for k, v in wanted.items()
    )
    return all(hits) if str(mode).startswith("all") else any(hits)


def _same_binding(a: Binding, b: Binding) -> bool:
    return (a.destination, a.routing_key, a.to_exchange, dict(a.arguments)) == (
        b.destination,
        b.routing_key,
        b.to_exchange,
        dict(b.arguments),
    )


def _normalised_queue_args(queue: Queue) -> dict[str, Any]:
    args = dict(queue.arguments)
    # A queue declared without a type is classic, and RabbitMQ accepts the other spelling on
    # redeclare in both directions (measured on 3.10.8).
    args.setdefault("x-queue-type", "classic")
    return args


def _typed(value: Any) -> tuple[str, Any]:
    # RabbitMQ compares arguments by AMQP type class and value: 1000 and 1000.0 differ,
    # True and 1 differ, a short and a long int with the same value do not.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, bytes):
        return ("str", value.decode("utf-8", "surrogateescape"))
    return (type(value).__name__, value)


def _int_arg(queue: Queue, key: str, *, maximum: int | None = None) -> int | None:
    value = queue.arguments.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(queue, key, value, "expected integer")
    if value < 0 or (maximum is not None and value > maximum):
        raise _invalid(queue, key, value)
    return value


def _str_arg(queue: Queue, key: str) -> str | None:
    value = queue.arguments.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(queue, key, value, "expected string")


def _invalid(queue: Queue, key: str, value: object, why: str = "") -> TopologyMismatch:
    detail = f": {why}" if why else ""
    return TopologyMismatch(
        f"PRECONDITION_FAILED - invalid arg {key!r} for queue {queue.name!r}: {value!r}{detail}"
    )


def _inequivalent(name: str, key: str, received: object, current: object) -> TopologyMismatch:
    return TopologyMismatch(
        f"PRECONDITION_FAILED - inequivalent arg {key!r} for {name!r}: "
        f"received {received!r} but current is {current!r}"
    )
