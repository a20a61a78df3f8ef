"""Values that JSON cannot carry by itself, sent across the fleet in both directions.

kombu and hare tag them the same way (`{"__type__": "datetime", ...}`), so each must arrive as
its own type, equal to what was sent: an aware datetime with its offset, a naive one naive, an
exact Decimal, a UUID, bytes (UTF-8 and not).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

__all__ = ("TYPED_KWARGS", "assert_same_values")

TYPED_KWARGS: dict[str, Any] = {
    "when_utc": datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "when_india": datetime(2030, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    "when_naive": datetime(2030, 1, 2, 3, 4, 5),
    "day": date(2030, 2, 28),
    "clock": time(23, 59, 58, 999),
    "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "amount": Decimal("12345678901234567890.123456789012345678"),
    "tiny": Decimal("-0.000000000000000000000001"),
    "utf8": "caf\u00e9".encode(),
    "binary": b"\x80\x81\xfe\xff",
    "nested": {"prices": [Decimal("0.10"), Decimal("2.50")], "at": [date(2031, 1, 1)]},
}


def assert_same_values(got: dict[str, Any], sent: dict[str, Any]) -> None:
    """Each value equal to what was sent, of the same type (and, for datetimes, offset)."""
    assert set(got) == set(sent)
    for name, value in sent.items():
        arrived = got[name]
        assert arrived == value, name
        assert type(arrived) is type(value), f"{name}: {type(arrived).__name__}"
        if isinstance(value, datetime):
            assert arrived.utcoffset() == value.utcoffset(), name
        if isinstance(value, Decimal):
            assert str(arrived) == str(value), name  # exact digits, not a float's
    # Nested values (dicts, lists) compare by type inside too.
    assert [type(p) for p in got["nested"]["prices"]] == [Decimal, Decimal]
    assert type(got["nested"]["at"][0]) is date
