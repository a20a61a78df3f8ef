"""What a worker knows of one message: Celery's worker `Request`, built from a delivery.

The `Request` is the context a task runs in (`hare.context`) and what `task_received`,
`task_revoked` and `task_retry` receivers and errbacks that take the request get.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from hare.context import TaskContext
from hare.core.envelope import Delivery, Properties
from hare.core.headers import REDELIVERIES_HEADER
from hare.core.message import Message

__all__ = ("PropertiesView", "Request", "request_of")


def _of_message(field: str) -> Any:
    """A read-only attribute that is the message's `field`."""
    return property(attrgetter(f"message.{field}"))


def _signatures(field: str) -> Any:
    """A read-only attribute: the signature dicts the message embeds as `field`, or None."""

    def get(request: Request) -> list[dict[str, Any]] | None:
        value = getattr(request.message.embed, field)
        return None if value is None else [dict(sig) for sig in value]

    return property(get)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(TaskContext):
    """A worker's context of one message, as `task_received`, `task_revoked` and `task_retry`
    receivers and errbacks that take the request get it: Celery's worker `Request` attributes,
    read from the message, on hare's `TaskContext` (`task` is the task's name here).

    As in Celery, `name` is the shadow name when the message has one (`type` is the task's
    name), `stamps` holds the values of the stamps `stamped_headers` names, `time_limits` is
    (hard, soft) and `callbacks`, `errbacks`, `chain` and `chord` are the signature dicts the
    message embeds (or None).

    `notes` is the one mutable part: a dict middleware may keep values of its own in for
    this run, from `before_run` until the delivery is settled (the worker makes the request
    current, `hare.context.current()`, while it publishes for the run: its retry, what
    follows it in a workflow). A prefork child's notes stay in the child.
    """

    notes: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    type = task = _of_message("task")
    task_id = _of_message("id")
    root_id = _of_message("root_id")
    parent_id = _of_message("parent_id")
    group = _of_message("group")
    group_index = _of_message("group_index")
    eta = _of_message("eta")
    expires = _of_message("expires")
    time_limits = _of_message("timelimit")
    reply_to = _of_message("reply_to")
    correlation_id = _of_message("correlation_id")
    replaced_task_nesting = _of_message("replaced_task_nesting")
    stamped_headers = _of_message("stamped_headers")
    stamps = _of_message("stamps")
    callbacks = _signatures("callbacks")
    errbacks = _signatures("errbacks")
    chain = _signatures("chain")

    @property
    def name(self) -> str:
        return self.message.shadow or self.message.task

    @property
    def task_name(self) -> str:
        return self.name

    @property
    def args(self) -> list[Any]:
        return list(self.message.args)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.message.kwargs)

    @property
    def argsrepr(self) -> str:
        return self.message.argsrepr or ""

    @property
    def kwargsrepr(self) -> str:
        return self.message.kwargsrepr or ""

    @property
    def chord(self) -> dict[str, Any] | None:
        chord = self.message.embed.chord
        return None if chord is None else dict(chord)

    @property
    def payload(self) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        """The message body as Celery's protocol v2 has it: args, kwargs and what follows."""
        follows = {"callbacks": self.callbacks, "errbacks": self.errbacks}
        return self.args, self.kwargs, {**follows, "chain": self.chain, "chord": self.chord}

    #: Celery's worker `Request` keeps the body as `_Request__payload`; code reaches for it.
    __payload = payload


def request_of(message: Message, delivery: Delivery, hostname: str) -> Request:
    """The request of `message`, which arrived as `delivery` at the worker `hostname`."""
    return Request(
        message=message,
        queue=delivery.queue,
        hostname=hostname,
        delivery_info={
            "exchange": delivery.exchange,
            "routing_key": delivery.routing_key,
            "priority": delivery.properties.priority,
            # A classic queue's redelivery is republished by the worker with a count
            # (`Settlement.count_redelivery`): still a redelivery.
            "redelivered": delivery.redelivered
            or bool(delivery.properties.headers.get(REDELIVERIES_HEADER)),
        },
        properties=_properties(delivery),
    )


#: The AMQP properties a task sees in `context.properties`, headers apart.
_PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "app_id",
)


def _properties(delivery: Delivery) -> Mapping[str, Any]:
    return PropertiesView(delivery.properties)


class PropertiesView(Mapping[str, Any]):
    """`request.properties`: the delivery's AMQP properties that are set, headers apart, as a
    read-only mapping made when first read (most tasks never read it: building the dict for
    every delivery cost ~3 µs a task)."""

    __slots__ = ("_properties", "_items")

    def __init__(self, properties: Properties) -> None:
        self._properties = properties
        self._items: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        items = self._items
        if items is None:
            found = ((name, getattr(self._properties, name)) for name in _PROPERTIES)
            items = self._items = {name: value for name, value in found if value is not None}
        return items

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())
