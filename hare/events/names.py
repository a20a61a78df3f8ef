"""Event names, handler patterns and the names hare gives an event's broker objects.

Pure: no I/O. An event name is a topic routing key: words separated by dots, each word made of
letters, digits, `_` and `-` (`order.paid`, `user-42.signed_up`). A handler's pattern is the
same with AMQP topic wildcards as whole words: `*` is exactly one word, `#` zero or more
(`order.*`, `order.#`, `#.failed`). Matching follows RabbitMQ's topic exchange.
"""

from __future__ import annotations

import re

from hare.events.errors import InvalidEventName

__all__ = (
    "EVENT_TASK",
    "EXCHANGE",
    "HANDLER_QUEUE_PREFIX",
    "UNHANDLED_EXCHANGE",
    "UNHANDLED_QUEUE",
    "handler_queue_name",
    "matches",
    "validate_event_name",
    "validate_pattern",
)

#: The task name an emitted event carries on the wire (Celery protocol v2's `task` header).
#: A worker does not look it up: a delivery on a handler queue runs that queue's handler.
EVENT_TASK = "hare.event"
#: The durable topic exchange events are published to, routing key = event name.
EXCHANGE = "hare.events"
#: The exchange's alternate exchange (fanout) and the durable queue bound to it: an event no
#: handler queue is bound for is parked there rather than dropped.
UNHANDLED_EXCHANGE = "hare.events.unhandled"
UNHANDLED_QUEUE = "hare.events.unhandled"
#: A handler's queue: `hare.ev.<app>.<handler's task name>` (`hare.ev.shop.billing.on_paid`).
HANDLER_QUEUE_PREFIX = "hare.ev."

#: AMQP routing keys are short strings (255 bytes).
_MAX_BYTES = 255
_WORD = re.compile(r"[A-Za-z0-9_\-]+")


def validate_event_name(name: object) -> str:
    """`name` if it can be emitted: dot-separated words, no wildcards; else `InvalidEventName`.

    >>> validate_event_name("order.paid")
    'order.paid'
    """
    words = _words(name, "an event name")
    for word in words:
        if word in ("*", "#"):
            raise InvalidEventName(
                f"event name {name!r}: {word!r} is a wildcard; wildcards are for handler "
                "patterns (@app.on), an emitted event names one event"
            )
        _check_word(name, word)
    return str(name)


def validate_pattern(pattern: object) -> str:
    """`pattern` if a handler can bind with it (words, `*` and `#` as whole words)."""
    for word in _words(pattern, "a handler pattern"):
        if word not in ("*", "#"):
            _check_word(pattern, word)
    return str(pattern)


def matches(pattern: str, name: str) -> bool:
    """Whether handler `pattern` receives event `name`, as RabbitMQ's topic exchange routes.

    >>> matches("order.*", "order.paid"), matches("order.*", "order.paid.late")
    (True, False)
    >>> matches("order.#", "order"), matches("#", "anything.at.all")
    (True, True)
    """
    return _match(pattern.split("."), name.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    # Dynamic programming over (pattern position, word position): linear in their product.
    reachable = {0}
    for part in pattern:
        if part == "#":
            reachable = set(range(min(reachable), len(words) + 1)) if reachable else set()
        elif part == "*":
            reachable = {i + 1 for i in reachable if i < len(words)}
        else:
            reachable = {i + 1 for i in reachable if i < len(words) and words[i] == part}
        if not reachable:
            return False
    return len(words) in reachable


def handler_queue_name(app_main: str, handler: str) -> str:
    """The queue of handler `handler` (its task name) in app `app_main`: stable across deploys
    as long as neither is renamed."""
    return f"{HANDLER_QUEUE_PREFIX}{app_main or 'app'}.{handler}"


def _words(value: object, what: str) -> list[str]:
    if not isinstance(value, str) or not value:
        raise InvalidEventName(f"{what} must be a non-empty string, not {value!r:.60}")
    if len(value.encode()) > _MAX_BYTES:
        raise InvalidEventName(f"{what} {value[:40]!r}... is longer than {_MAX_BYTES} bytes")
    return value.split(".")


def _check_word(value: object, word: str) -> None:
    if not _WORD.fullmatch(word):
        shown = "an empty word" if not word else f"the word {word!r}"
        raise InvalidEventName(
            f"{value!r}: {shown}; event names are words of letters, digits, '_' and '-' "
            "separated by single dots"
        )
