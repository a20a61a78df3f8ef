"""Values a call's options and a delivered message share, each read one way.

* `moment`: a time, as a call gives it (seconds from now, a `timedelta`, a `datetime` or an
  ISO-8601 string) or as a message carries it (a `datetime` or an ISO-8601 string): always
  timezone-aware, a naive one read as UTC (`utc`), as Celery's worker reads it (Celery 5.7's
  `maybe_make_aware` makes a naive eta UTC first, whatever the app's `timezone`). A naive
  time a caller gave (`eta=`, `expires=`, `Retry(eta=)`) is also said once per process, on the
  `hare` logger (`warn_if_naive`): `datetime.now() + timedelta(hours=1)` in Europe/Berlin is
  an hour late, read as UTC;
* `signatures`: `link=` / `callbacks`-style values, one signature dict or a list of them.

Each raises `ValueError` saying what is wrong, without the option's name: the call builder
(`hare.core.calls`) turns it into `ConfigurationError`, the decoder (`hare.core.protocol`)
into `MalformedMessage`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ("moment", "naive", "signatures", "utc", "warn_if_naive")

logger = logging.getLogger("hare")

#: The options a naive time was said of, in this process (each is said once).
_said: set[str] = set()


def utc(value: datetime) -> datetime:
    """`value`, a naive datetime read as UTC (as Celery's worker reads one)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def naive(value: object) -> bool:
    """Whether `value` is a time without a zone: a naive datetime or ISO-8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return False
    return isinstance(value, datetime) and value.utcoffset() is None


def warn_if_naive(option: str, value: object) -> None:
    """Say, once per process and option (as the caller writes it: `eta=`, `Retry(eta=)`),
    that `value` has no zone and is read as UTC, and how to give an aware one. Nothing for
    an aware or relative time."""
    if option in _said or not naive(value):
        return
    _said.add(option)
    shown = value.isoformat() if isinstance(value, datetime) else value
    logger.warning(
        "%s was given %s, which has no timezone: hare reads it as UTC (as Celery does, "
        "whatever its timezone setting). Give an aware datetime, e.g. "
        "datetime.now(timezone.utc) + timedelta(hours=1) or "
        'datetime(..., tzinfo=ZoneInfo("Europe/Berlin")), or seconds from now. '
        "(Said once per process.)",
        option,
        shown,
    )


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
