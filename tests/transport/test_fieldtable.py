"""The header field-table encoder writes what py-amqp writes (research/celery.md §2.7).

Pure tests. The cross-check against py-amqp itself is opt-in: it runs when `amqp` (py-amqp) is
importable, e.g. ``pip download amqp==5.3.1 vine --no-deps -d /tmp/pyamqp`` unpacked into a
directory named by ``HARE_PYAMQP_PATH``; py-amqp is not a dependency of hare.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import decode as pamqp_decode
from pamqp import encode as pamqp_encode
from pamqp.header import ContentHeader

from hare.core.envelope import Properties
from hare.errors import HareError
from hare.transport.fieldtable import (
    AmqpProperties,
    FieldTableError,
    encode_table,
    hare_properties,
)
from tests.properties import examples

# --- the §2.7 table, written out independently of the module under test -------------------


def s_(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return b"S" + struct.pack(">I", len(raw)) + raw


def i_(value: int) -> bytes:
    return b"I" + struct.pack(">i", value)


def l_(value: int) -> bytes:
    return b"L" + struct.pack(">q", value)


def t_(value: bool) -> bytes:
    return b"t" + bytes((int(value),))


V = b"V"


def a_(*items: bytes) -> bytes:
    data = b"".join(items)
    return b"A" + struct.pack(">I", len(data)) + data


def table(*entries: tuple[str, bytes]) -> bytes:
    data = b"".join(bytes((len(k.encode()),)) + k.encode() + v for k, v in entries)
    return struct.pack(">I", len(data)) + data


def f_(*entries: tuple[str, bytes]) -> bytes:
    return b"F" + table(*entries)


def value_bytes(value: Any) -> bytes:
    """What `encode_table` writes for one value (the table minus its key and lengths)."""
    return encode_table({"k": value})[4 + 2 :]


class Colour(IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("py", s_("py")),
        ("", s_("")),
        ("ü", b"S\x00\x00\x00\x02\xc3\xbc"),
        (b"\xff\x00", s_(b"\xff\x00")),
        (True, b"t\x01"),
        (False, b"t\x00"),
        (None, b"V"),
        (0, i_(0)),
        (1, i_(1)),
        (-1, b"I\xff\xff\xff\xff"),
        (2**31 - 1, i_(2**31 - 1)),
        (-(2**31) + 1, i_(-(2**31) + 1)),
        # py-amqp's range test is `v < -2147483647`, so -2**31 goes out as L.
        (-(2**31), l_(-(2**31))),
        (2**31, l_(2**31)),
        (2**40, b"L\x00\x00\x01\x00\x00\x00\x00\x00"),
        (2**63 - 1, l_(2**63 - 1)),
        (-(2**63), l_(-(2**63))),
        (0.5, b"d?\xe0\x00\x00\x00\x00\x00\x00"),
        (float("inf"), b"d" + struct.pack(">d", math.inf)),
        (Decimal("1.10"), b"D\x02\x00\x00\x00\x6e"),
        (Decimal("-3.5"), b"D\x01" + struct.pack(">i", -35)),
        (Decimal("7"), b"D\x00" + struct.pack(">i", 7)),
        (Decimal("1E+3"), b"D\x00" + struct.pack(">i", 1000)),
        (datetime(2030, 1, 2, 3, 4, 5), b"T" + struct.pack(">Q", 1893553445)),
        (
            datetime(2030, 1, 2, 4, 4, 5, 999, tzinfo=timezone(timedelta(hours=1))),
            b"T" + struct.pack(">Q", 1893553445),
        ),
        ({}, b"F\x00\x00\x00\x00"),
        ({"a": 1}, f_(("a", i_(1)))),
        (OrderedDict(b=None), f_(("b", V))),
        ([], b"A\x00\x00\x00\x00"),
        ([300, 240], a_(i_(300), i_(240))),
        ((300, 240), a_(i_(300), i_(240))),
        ([None, None], a_(V, V)),
        ([[1], {"x": "y"}], a_(a_(i_(1)), f_(("x", s_("y"))))),
        (Colour.RED, i_(1)),
    ],
    ids=repr,
)
def test_each_type_letter(value: Any, expected: bytes) -> None:
    assert value_bytes(value) == expected


def test_table_framing_and_key_order() -> None:
    # Keys in insertion order (py-amqp), not sorted (pamqp); uint32 length prefix.
    assert encode_table({"b": 1, "a": None}) == table(("b", i_(1)), ("a", V))
    assert encode_table({}) == b"\x00\x00\x00\x00"
    assert encode_table({"k" * 255: None})[4:6] == b"\xffk"


def test_pamqp_default_encoder_is_what_we_avoid() -> None:
    # The reason this module exists: pamqp writes `b` and `f`, which py-amqp <= 5.3.1 misreads.
    assert pamqp_encode.field_table({"retries": 0}) == table(("retries", b"b\x00"))
    assert value_bytes(0) == i_(0)


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ({"s": {1, 2}}, "s"),
        ({"d": date(2030, 1, 1)}, "d"),
        ({"o": object()}, "o"),
        ({"big": 2**63}, "big"),
        ({"small": -(2**63) - 1}, "small"),
        ({"nan": Decimal("NaN")}, "nan"),
        ({"prec": Decimal("1.1234567890123")}, "prec"),
        ({"old": datetime(1969, 12, 31, tzinfo=UTC)}, "old"),
        ({"a": {"b": [1, {2}]}}, "a.b[1]"),
        ({"timelimit": [None, bytearray(b"x")]}, "timelimit[1]"),
        ({"k" * 256: 1}, "k" * 256),
        ({1: 1}, "1"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_unsupported_values_raise_a_hare_type_error(bad: dict[Any, Any], path: str) -> None:
    with pytest.raises(FieldTableError) as caught:
        encode_table(bad)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, HareError)
    assert caught.value.path == path
    assert path[:30] in str(caught.value)


# --- round trip through pamqp's decoder (what aiormq gives a hare consumer) ----------------

keys = st.text(max_size=12)
scalars = (
    st.text(max_size=20)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) + 1, -(2**31) - 1, 2**40, -(2**40)])
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
tables = st.dictionaries(keys, values, max_size=8)


def same(left: Any, right: Any) -> bool:
    """Equal and of the same types all the way down (so True is not 1 and 1.0 is not 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    return bool(left == right)


@given(tables)
@settings(max_examples=examples(300))
def test_round_trip_through_pamqp(headers: dict[str, Any]) -> None:
    encoded = encode_table(headers)
    consumed, decoded = pamqp_decode.field_table(encoded)
    assert consumed == len(encoded)
    assert same(decoded, headers)


# --- Celery's own header table, byte for byte -----------------------------------------------

#: `add.delay(2, 3)` as Celery 5.7 sent it (research/celery.md §2.12), in its key order.
CELERY_ADD_HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "tasks.add",
    "id": "a32dd6c1-1aec-4491-b8d2-132c4a2a2aff",
    "shadow": None,
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [None, None],
    "root_id": "a32dd6c1-1aec-4491-b8d2-132c4a2a2aff",
    "parent_id": None,
    "argsrepr": "(2, 3)",
    "kwargsrepr": "{}",
    "origin": "gen31415@vm",
    "ignore_result": False,
    "replaced_task_nesting": 0,
    "stamped_headers": None,
    "stamps": {},
}

CELERY_ADD_BYTES = table(
    ("lang", s_("py")),
    ("task", s_("tasks.add")),
    ("id", s_("a32dd6c1-1aec-4491-b8d2-132c4a2a2aff")),
    ("shadow", V),
    ("eta", V),
    ("expires", V),
    ("group", V),
    ("group_index", V),
    ("retries", i_(0)),
    ("timelimit", a_(V, V)),
    ("root_id", s_("a32dd6c1-1aec-4491-b8d2-132c4a2a2aff")),
    ("parent_id", V),
    ("argsrepr", s_("(2, 3)")),
    ("kwargsrepr", s_("{}")),
    ("origin", s_("gen31415@vm")),
    ("ignore_result", t_(False)),
    ("replaced_task_nesting", i_(0)),
    ("stamped_headers", V),
    ("stamps", f_()),
)


def test_celery_add_delay_headers_byte_exact() -> None:
    encoded = encode_table(CELERY_ADD_HEADERS)
    assert encoded == CELERY_ADD_BYTES
    assert b"\x07retriesI\x00\x00\x00\x00" in encoded
    assert b"\ttimelimitA\x00\x00\x00\x02VV" in encoded
    assert b"\x15replaced_task_nestingI\x00\x00\x00\x00" in encoded
    assert pamqp_decode.field_table(encoded) == (len(encoded), CELERY_ADD_HEADERS)


# --- AmqpProperties: the same table inside a message's basic properties --------------------


def test_amqp_properties_carry_the_celery_table_byte_exact() -> None:
    marshalled = AmqpProperties.from_hare(Properties(headers=CELERY_ADD_HEADERS)).marshal()
    # property flags: headers (0x2000) and delivery-mode (0x1000); then the table; then 2.
    assert marshalled == b"\x30\x00" + CELERY_ADD_BYTES + b"\x02"


def test_amqp_properties_use_pyamqp_letters_where_pamqp_would_not() -> None:
    headers: dict[str, Any] = {"retries": 0, "timelimit": [300, 240], "ratio": 0.1}
    ours = AmqpProperties.from_hare(Properties(headers=headers)).marshal()
    pamqps = spec.Basic.Properties(headers=headers, delivery_mode=2).marshal()
    assert b"\x07retriesI\x00\x00\x00\x00" in ours
    assert b"\ttimelimit" + a_(i_(300), i_(240)) in ours
    assert b"\x05ratiod" + struct.pack(">d", 0.1) in ours
    assert b"\x07retriesb\x00" in pamqps  # what the subclass exists to avoid
    assert b"\ttimelimitA\x00\x00\x00\x06s\x01\x2cs\x00\xf0" in pamqps
    assert b"\x05ratiof" in pamqps


def test_amqp_properties_round_trip_through_pamqp() -> None:
    hare = Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=CELERY_ADD_HEADERS,
        delivery_mode=1,
        priority=5,
        correlation_id="c",
        reply_to="r",
        expiration="1000",
        message_id="m",
        timestamp=1_700_000_000,
        type="t",
        app_id="a",
    )
    header = ContentHeader(body_size=3, properties=AmqpProperties.from_hare(hare))
    decoded = ContentHeader()
    decoded.unmarshal(header.marshal())
    received = decoded.properties
    assert received.headers == CELERY_ADD_HEADERS
    assert received.timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert (received.message_type, received.app_id, received.priority) == ("t", "a", 5)
    assert hare_properties(received) == hare  # and back to what was published
    assert hare_properties(spec.Basic.Properties()) == Properties(delivery_mode=None)


short_strings = st.text(max_size=30)
basic_properties = st.fixed_dictionaries(
    {},
    optional={
        "content_type": short_strings,
        "content_encoding": short_strings,
        "headers": st.none() | st.dictionaries(st.just("k"), st.text(max_size=10) | st.none()),
        "delivery_mode": st.sampled_from([1, 2]),
        "priority": st.integers(0, 255),
        "correlation_id": short_strings,
        "reply_to": short_strings,
        "expiration": short_strings,
        "message_id": short_strings,
        "timestamp": st.datetimes(
            # pamqp reads a timestamp past 2106 as milliseconds
            datetime(1970, 1, 2),
            datetime(2100, 1, 1),
            timezones=st.just(UTC),
        ),
        "message_type": short_strings,
        "user_id": short_strings,
        "app_id": short_strings,
    },
)


@given(basic_properties)
@settings(max_examples=examples(300))
def test_amqp_properties_marshal_like_pamqp(values: dict[str, Any]) -> None:
    # The fast marshal writes pamqp's bytes wherever pamqp and py-amqp agree (one-key tables
    # of strings and None), and pamqp reads them back.
    ours = AmqpProperties(**values).marshal()
    assert ours == spec.Basic.Properties(**values).marshal()
    decoded = spec.Basic.Properties()
    offset, flags = ContentHeader._get_flags(ours)
    decoded.unmarshal(flags, ours[offset:])
    expected = {name: value for name, value in values.items() if value != ""}  # not sent
    if "timestamp" in expected:
        expected["timestamp"] = expected["timestamp"].replace(microsecond=0)  # whole seconds
    assert decoded == spec.Basic.Properties(**expected)


def test_amqp_properties_leave_out_an_empty_table() -> None:
    assert AmqpProperties.from_hare(Properties()).marshal() == b"\x10\x00\x02"


# --- opt-in: the real py-amqp writer and reader ---------------------------------------------


@pytest.fixture
def pyamqp_serialization(monkeypatch: pytest.MonkeyPatch) -> Any:
    path = os.environ.get("HARE_PYAMQP_PATH")
    if path:
        monkeypatch.syspath_prepend(path)
    return pytest.importorskip(
        "amqp.serialization", reason="py-amqp not importable (set HARE_PYAMQP_PATH)"
    )


def pyamqp_write(serialization: Any, headers: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    serialization._write_table(headers, out.write, [])
    return out.getvalue()


def test_celery_headers_match_pyamqp(pyamqp_serialization: Any) -> None:
    assert pyamqp_write(pyamqp_serialization, CELERY_ADD_HEADERS) == CELERY_ADD_BYTES
    (decoded,), _ = pyamqp_serialization.loads("F", CELERY_ADD_BYTES, 0)
    assert decoded == CELERY_ADD_HEADERS


@given(headers=tables)
@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_tables_match_pyamqp(pyamqp_serialization: Any, headers: dict[str, Any]) -> None:
    # The hypothesis strategy includes the ±2**31 boundaries and 2**40.
    assert encode_table(headers) == pyamqp_write(pyamqp_serialization, headers)
