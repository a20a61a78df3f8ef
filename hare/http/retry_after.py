"""Reading a `Retry-After` header (RFC 9110 §10.2.3). Pure: the time is an argument."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ("parse_retry_after",)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait that `value` asks for at `now` (epoch seconds); `None` when it is
    absent or neither form. Delta-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2026
    07:28:00 GMT``); a date in the past means at once (0).

    >>> parse_retry_after("120", 0.0)
    120.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0)
    60.0
    >>> parse_retry_after("soon", 0.0) is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # the asctime form carries no zone: HTTP-dates are in GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
