"""Encode AMQP field tables (message headers) exactly as py-amqp does.

Celery's workers read headers with py-amqp, and py-amqp up to 5.3.1 misreads pamqp's default
choices: pamqp writes small ints as `b`/`s`/`u` and floats as 32-bit `f`, and py-amqp <= 5.3.1
reads `s` as a *short string*, desyncs the table and raises `FrameSyntaxError`; a Celery
worker then drops the connection, gets the message redelivered and loops forever
(research/celery.md §0.1, §2.7). So hare writes what py-amqp 5.x's `_write_item` writes:

======================  ======  =====================================================
value                   letter  payload
======================  ======  =====================================================
str (and bytes)         ``S``   uint32 length + UTF-8 (``surrogatepass``) / raw bytes
bool                    ``t``   one octet, 0 or 1
float                   ``d``   IEEE-754 double
int, -2^31 < v < 2^31   ``I``   int32
other int within int64  ``L``   int64 (py-amqp sends -2^31 itself as ``L`` too)
Decimal                 ``D``   scale octet + int32 mantissa
datetime                ``T``   uint64 seconds since the epoch, UTC (naive = UTC)
dict / Mapping          ``F``   nested field table
list / tuple            ``A``   field array
None                    ``V``   nothing
======================  ======  =====================================================

Keys keep their insertion order (py-amqp's; pamqp sorts them). `AmqpProperties` puts such a
table in the basic properties of a message that aiormq publishes, and `hare_properties` turns
received ones back into hare's `Properties`. Pure: no I/O, no aiormq.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, cast

from pamqp import commands as spec
from pamqp import common as pamqp_common
from pamqp import encode as pamqp_encode

from hare.core.envelope import Properties
from hare.errors import FieldTableError

__all__ = ("AmqpProperties", "FieldTableError", "encode_table", "hare_properties")

_INT32_MAX = 2_147_483_647
_INT64_MIN = -9_223_372_036_854_775_808
_INT64_MAX = 9_223_372_036_854_775_807

_LONG_STRING = struct.Struct(">cI").pack
_BOOL = struct.Struct(">cB").pack
_DOUBLE = struct.Struct(">cd").pack
_INT32 = struct.Struct(">ci").pack
_INT64 = struct.Struct(">cq").pack
_DECIMAL = struct.Struct(">cBi").pack
_TIMESTAMP = struct.Struct(">cQ").pack
_LENGTH = struct.Struct(">I").pack

_SUPPORTED = "str, bytes, bool, int, float, Decimal, datetime, None, list, tuple, dict"


class _Failure(Exception):
    """Raised deep in the encoder; the path is collected while it unwinds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts: list[str] = []


def encode_table(table: Mapping[str, Any]) -> bytes:
    """Encode `table` as an AMQP field table: a uint32 byte length, then the entries.

    Raises `FieldTableError` (a `TypeError`) for a value py-amqp could not write either.
    """
    try:
        return _table(table)
    except _Failure as failure:
        path = "".join(reversed(failure.parts))
        path = path[1:] if path.startswith(".") else path
        raise FieldTableError(path, failure.reason) from None


#: Encoded `key + value` of recent table entries whose value is small and immutable. Celery's
#: headers mostly repeat from message to message (`lang`, `task`, `None`s, `retries: 0`...), and
#: encoding them is a fifth of a publish's CPU. The type is part of the cache key, since
#: `True == 1` and `1 == 1.0` hash alike but encode differently. Bounded: cleared when full.
_ENTRIES: dict[tuple[Any, type, Any], bytes] = {}
_ENTRIES_MAX = 4096
_CACHEABLE = frozenset({str, int, bool, type(None)})


def _table(table: Mapping[Any, Any]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    cache = _ENTRIES
    for key, value in table.items():
        kind = type(value)
        cacheable = (
            type(key) is str and kind in _CACHEABLE and (kind is not str or len(value) <= 64)
        )
        if cacheable:
            entry = cache.get((key, kind, value))
            if entry is not None:
                append(entry)
                continue
        try:
            entry = _key(key) + _value(value)
        except _Failure as failure:
            failure.parts.append(f".{key}" if isinstance(key, str) else f".{key!r}")
            raise
        if cacheable:
            if len(cache) >= _ENTRIES_MAX:
                cache.clear()
            cache[(key, kind, value)] = entry
        append(entry)
    data = b"".join(parts)
    return _LENGTH(len(data)) + data


def _key(key: object) -> bytes:
    """A key as a short string: its length octet, then its UTF-8 bytes (py-amqp takes bytes too)."""
    if isinstance(key, str):
        raw = key.encode("utf-8", "surrogatepass")
    elif isinstance(key, bytes):
        raw = key
    else:
        raise _Failure(f"a key must be a str, not {type(key).__name__}")
    if len(raw) > 255:
        raise _Failure(f"a key is a short string of at most 255 bytes, not {len(raw)}")
    return bytes((len(raw),)) + raw


def _array(items: list[Any] | tuple[Any, ...]) -> bytes:
    parts: list[bytes] = []
    for index, item in enumerate(items):
        try:
            parts.append(_value(item))
        except _Failure as failure:
            failure.parts.append(f"[{index}]")
            raise
    data = b"".join(parts)
    return _LENGTH(len(data)) + data


def _value(value: object) -> bytes:
    # Exact-type dispatch first: header tables are almost all plain str/int/None/bool.
    encoder = _BY_TYPE.get(type(value))
    if encoder is not None:
        return encoder(value)
    return _value_by_isinstance(value)


def _value_by_isinstance(value: object) -> bytes:
    # Subclasses (IntEnum, StrEnum, OrderedDict, ...) in py-amqp's own order of checks.
    # bool before int: bool is an int subclass and must stay `t`.
    if isinstance(value, (str, bytes)):
        return _string(value)
    if isinstance(value, bool):
        return _bool(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime):
        return _datetime(value)
    if isinstance(value, Mapping):
        return b"F" + _table(value)
    if isinstance(value, (list, tuple)):
        return b"A" + _array(value)
    raise _Failure(f"cannot encode a {type(value).__name__} (supported: {_SUPPORTED})")


def _string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return _LONG_STRING(b"S", len(raw)) + raw


def _bool(value: bool) -> bytes:
    return _BOOL(b"t", 1 if value else 0)


def _float(value: float) -> bytes:
    return _DOUBLE(b"d", value)


def _int(value: int) -> bytes:
    # py-amqp's test is `v > 2147483647 or v < -2147483647`, so -2**31 goes out as `L`
    # although it fits an int32; copy it, byte-exactness is the point of this module.
    if -_INT32_MAX <= value <= _INT32_MAX:
        return _INT32(b"I", value)
    if _INT64_MIN <= value <= _INT64_MAX:
        return _INT64(b"L", value)
    raise _Failure(f"the int {value} does not fit a signed 64-bit integer")


def _decimal(value: Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise _Failure(f"cannot encode the Decimal {value} (NaN or infinity)")
    mantissa = 0
    for digit in digits:
        mantissa = mantissa * 10 + digit
    if exponent > 0:
        # py-amqp crashes on a positive exponent (Decimal("1E+3")); scale it into the
        # mantissa instead: the same number, and what py-amqp would send for Decimal("1000").
        mantissa *= 10**exponent
        exponent = 0
    if sign:
        mantissa = -mantissa
    if -exponent > 255 or not -_INT32_MAX - 1 <= mantissa <= _INT32_MAX:
        raise _Failure(f"the Decimal {value} needs more than 255 places or an int32 mantissa")
    return _DECIMAL(b"D", -exponent, mantissa)


def _datetime(value: datetime) -> bytes:
    # Whole seconds, UTC; a naive datetime is taken as UTC (utctimetuple leaves it as is).
    seconds = calendar.timegm(value.utctimetuple())
    if seconds < 0:
        raise _Failure(f"cannot encode {value.isoformat()}: AMQP timestamps start at 1970")
    return _TIMESTAMP(b"T", seconds)


def _void(_: object) -> bytes:
    return b"V"


def _dict(value: Mapping[Any, Any]) -> bytes:
    return b"F" + _table(value)


def _list(value: list[Any] | tuple[Any, ...]) -> bytes:
    return b"A" + _array(value)


_BY_TYPE: dict[type, Callable[[Any], bytes]] = {
    str: _string,
    bytes: _string,
    bool: _bool,
    int: _int,
    float: _float,
    type(None): _void,
    dict: _dict,
    list: _list,
    tuple: _list,
    Decimal: _decimal,
    datetime: _datetime,
}


class AmqpProperties(spec.Basic.Properties):
    """pamqp's `Basic.Properties` with the headers table written by `encode_table`.

    A subclass, not a patch of pamqp, so the choice stays with what hare publishes. No
    `__slots__` here: pamqp iterates `self.__slots__`, which must stay pamqp's list.
    """

    def encode_property(self, name: str, value: pamqp_common.FieldValue) -> bytes:
        if name == "headers" and isinstance(value, Mapping):
            return encode_table(value)
        return _pamqp_encode_property(self, name, value)

    def marshal(self) -> bytes:
        """pamqp's bytes (property flags, then the values set), without its per-value dispatch.

        Every publish runs this; pamqp's generic version costs a few µs of the ~100 µs of CPU
        a confirmed publish takes. All 14 flags fit one 16-bit word, so no continuation bit.
        """
        flags = 0
        parts = []
        for name, flag, write in _PROPERTY_WRITERS:
            value = getattr(self, name)
            if value is not None and value != "":
                flags |= flag
                parts.append(write(value))
        return _FLAGS(flags) + b"".join(parts)

    @classmethod
    def from_hare(cls, properties: Properties) -> AmqpProperties:
        """The wire form of hare's `Properties`."""
        timestamp = properties.timestamp
        return cls(
            content_type=properties.content_type,
            content_encoding=properties.content_encoding,
            # pamqp writes any table that is not None, even an empty one; omit it instead.
            headers=cast(pamqp_common.FieldTable, properties.headers) or None,
            delivery_mode=properties.delivery_mode,
            priority=properties.priority,
            correlation_id=properties.correlation_id,
            reply_to=properties.reply_to,
            expiration=properties.expiration,
            message_id=properties.message_id,
            timestamp=None if timestamp is None else datetime.fromtimestamp(timestamp, UTC),
            message_type=properties.type,
            app_id=properties.app_id,
        )


_pamqp_encode_property: Final = spec.Basic.Properties.encode_property
_NO_HEADERS: Final[Mapping[str, Any]] = MappingProxyType({})


def hare_properties(received: spec.Basic.Properties) -> Properties:
    """hare's `Properties` of a received message, header values as pamqp decoded them."""
    timestamp = received.timestamp
    headers = received.headers
    return Properties(
        content_type=received.content_type,
        content_encoding=received.content_encoding,
        headers=_NO_HEADERS if headers is None else headers,
        delivery_mode=received.delivery_mode,
        priority=received.priority,
        correlation_id=received.correlation_id,
        reply_to=received.reply_to,
        expiration=received.expiration,
        message_id=received.message_id,
        timestamp=None if timestamp is None else int(timestamp.timestamp()),
        type=received.message_type,
        app_id=received.app_id,
    )


def _short_string(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise TypeError(f"a message property is a short string of at most 255 bytes: {value!r}")
    return bytes((len(raw),)) + raw


_FLAGS: Final = struct.Struct(">H").pack
_PROPERTY_TYPES: Final[Mapping[str, Callable[[Any], bytes]]] = {
    "shortstr": _short_string,
    "octet": struct.Struct("B").pack,
    "table": encode_table,
    "timestamp": pamqp_encode.timestamp,
}
#: (attribute, flag bit, writer) for each basic property, in wire order.
_PROPERTY_WRITERS: Final = tuple(
    (
        name,
        spec.Basic.Properties.flags[name],
        _PROPERTY_TYPES[spec.Basic.Properties.amqp_type(name)],
    )
    for name in spec.Basic.Properties.__slots__
)
