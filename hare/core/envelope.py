"""A message as it travels: its AMQP properties, where it is published, and how it arrives.

Pure values shared by the core's wire formats (protocol, dead letters, ticks) and by the
transports, which re-export them from `hare.transport.base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hare.errors import MessageTooLarge

#: RabbitMQ 4.x's default `max_message_size`, and hare's (3.x: 128 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

__all__ = ("DEFAULT_MAX_MESSAGE_SIZE", "Delivery", "Envelope", "Properties", "check_size")


@dataclass(frozen=True, slots=True, kw_only=True)
class Properties:
    """AMQP basic properties of a message, as hare uses them."""

    content_type: str | None = None
    content_encoding: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    delivery_mode: int | None = 2
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    #: Per-message TTL in milliseconds, as AMQP carries it: a decimal string.
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    app_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A message ready to publish: where it goes, its body and its properties."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Properties


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A message as a consumer (or `get`) received it; settle it with ack or reject."""

    queue: str
    body: bytes
    properties: Properties
    exchange: str
    routing_key: str
    delivery_tag: int
    redelivered: bool
    #: The transport's own handle for settling this delivery (e.g. its channel).
    handle: Any = field(default=None, repr=False, compare=False)


def check_size(envelope: Envelope, limit: int) -> None:
    """Raise `MessageTooLarge` for a body over `limit` bytes, before anything is sent."""
    size = len(envelope.body)
    if size > limit:
        raise MessageTooLarge(
            f"a message of {_mib(size)} to {envelope.exchange or 'the default exchange'!r} "
            f"(routing key {envelope.routing_key!r}) is larger than max_message_size, "
            f"{_mib(limit)} (RabbitMQ 4.x refuses more than 16 MiB by default): "
            "keep large payloads elsewhere (object storage, a database) and send a reference",
            exchange=envelope.exchange,
            routing_key=envelope.routing_key,
        )


def _mib(size: int) -> str:
    return f"{size} bytes ({size / 1024 / 1024:.1f} MiB)"
