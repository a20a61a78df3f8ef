"""Values a call's options and a delivered message share, each read one way.

* `moment`: a time, as a call gives it (seconds from now, a `timedelta`, a `datetime` or an
  ISO-8601 string) or as a message carries it (a `datetime` or an ISO-8601 string): always
  timezone-aware, a naive one read as UTC (`utc`), as Celery's worker reads it;
* `signatures`: `link=` / `callbacks`-style values, one signature dict or a list of them.

Each raises `ValueError` saying what is wrong, without the option's name: the call builder
(`hare.core.calls`) turns it into `ConfigurationError`, the decoder (`hare.core.protocol`)
into `MalformedMessage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ("moment", "signatures", "utc")


def utc(value: datetime) -> datetime:
    """`value`, a naive datetime read as UTC (as Celery's worker reads one)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def moment(value: object, now: float | None = None) -> datetime | None:
    """The aware time `value` stands for; None for None.

    A `datetime` or an ISO-8601 string is absolute. With `now` (epoch seconds: a call's
    options), seconds (a number or a `timedelta`) count from `now`; without it (a message's
    headers) they are refused.
    """
    if value is None:
        return None
    if isinstance(value, datetime):  # pamqp decodes an AMQP timestamp field to a datetime
        return utc(value)
    if isinstance(value, str):
        try:
            return utc(datetime.fromisoformat(value))
        except ValueError:
            raise ValueError(f"{value!r:.80} is not an ISO-8601 date-time") from None
    if now is not None:
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(now + value, UTC)
        raise ValueError(f"must be seconds, a datetime or an ISO-8601 string, not {value!r:.60}")
    raise ValueError(f"must be an ISO-8601 string, not {type(value).__name__}")


def signatures(value: object) -> tuple[Mapping[str, Any], ...] | None:
    """None, or the signatures `value` holds: one signature dict, or a list of them."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return (value,)  # one signature where a list is due: harmless to accept
    if isinstance(value, list | tuple) and all(isinstance(item, Mapping) for item in value):
        return tuple(value)
    raise ValueError(f"must be a signature dict or a list of them, not {value!r:.80}")
