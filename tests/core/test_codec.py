"""Serializers: kombu's JSON type tags, the registry, accept_content and decode_body."""

from __future__ import annotations

import json
import pickle
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hare.core.codec import (
    CLOUDPICKLE,
    DEFAULT_ACCEPT,
    JSON,
    PICKLE,
    SERIALIZERS,
    accepted_content_types,
    decode_body,
    encode_body,
    get_serializer,
    json_dumps,
    json_loads,
)
from hare.errors import (
    ConfigurationError,
    ContentTypeRefused,
    MalformedMessage,
    MessageError,
    NotSupportedError,
)

OFFSETS = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=1)),
        timezone(timedelta(hours=-5)),
        timezone(timedelta(0, 19800)),
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.none() | OFFSETS)
    | st.dates()
    | st.times()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
)
#: Values that survive kombu JSON unchanged: no tuples (they come back as lists).
json_values = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


# --- JSON: the exact shapes kombu writes -------------------------------------------------------

U = uuid.UUID("c699f549-9ecd-498a-b3f7-694f1c6be46d")


@pytest.mark.parametrize(
    ("value", "tagged"),
    [
        (
            datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
            {"__type__": "datetime", "__value__": "2030-01-02T03:04:05+00:00"},
        ),
        (
            datetime(2026, 11, 22, 13, 44, 36, 272867, tzinfo=timezone(timedelta(hours=1))),
            {"__type__": "datetime", "__value__": "2026-11-22T13:44:36.272867+01:00"},
        ),
        (
            datetime(2030, 1, 2, 3, 4, 5),
            {"__type__": "datetime", "__value__": "2030-01-02T03:04:05"},
        ),
        (date(2030, 1, 2), {"__type__": "date", "__value__": "2030-01-02"}),
        (time(3, 4, 5, 6), {"__type__": "time", "__value__": "03:04:05.000006"}),
        (Decimal("1.10"), {"__type__": "decimal", "__value__": "1.10"}),
        (U, {"__type__": "uuid", "__value__": {"hex": U.hex, "version": 4}}),
        (b"caf\xc3\xa9", {"__type__": "bytes", "__value__": "café"}),
        (b"\xff\x00", {"__type__": "base64", "__value__": "/wA="}),
    ],
)
def test_json_tags_match_kombu(value: Any, tagged: dict[str, Any]) -> None:
    assert json.loads(json_dumps(value)) == tagged
    assert json_loads(json.dumps(tagged)) == value


def test_json_body_is_byte_identical_to_celery() -> None:
    body = [[2, 3], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    expected = b'[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    assert json_dumps(body) == expected


def test_json_tuples_become_lists() -> None:
    assert json_loads(json_dumps((1, (2, 3)))) == [1, [2, 3]]


def test_json_uses_a_json_reducer() -> None:
    class Point:
        def __json__(self) -> list[int]:
            return [1, 2]

    assert json_dumps({"p": Point()}) == b'{"p": [1, 2]}'


def test_json_uuid_readers_are_lenient() -> None:
    # Version 7 is outside what kombu's UUID(**value) takes on Python 3.11; `hex` alone suffices.
    v7 = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
    assert json_loads(json_dumps(v7)) == v7
    assert json_loads(json.dumps({"__type__": "uuid", "__value__": str(U)})) == U


def test_json_dicts_that_merely_mention_type_stay_dicts() -> None:
    plain = {"__type__": "datetime", "__value__": "x", "other": 1}
    assert json_loads(json_dumps(plain)) == plain
    assert json_loads('{"__type__": "thing"}') == {"__type__": "thing"}


@given(json_values)
def test_json_round_trip(value: Any) -> None:
    assert json_loads(json_dumps(value)) == value


# --- the registry ------------------------------------------------------------------------------


def test_registry_has_json_pickle_and_cloudpickle() -> None:
    assert SERIALIZERS == {"json": JSON, "pickle": PICKLE, "cloudpickle": CLOUDPICKLE}
    assert (JSON.content_type, JSON.content_encoding) == ("application/json", "utf-8")
    assert (PICKLE.content_type, PICKLE.content_encoding) == (
        "application/x-python-serialize",
        "binary",
    )
    assert (CLOUDPICKLE.content_type, CLOUDPICKLE.content_encoding) == (
        "application/x-cloudpickle",
        "binary",
    )
    assert DEFAULT_ACCEPT == {"application/json"}


@pytest.mark.parametrize("key", ["json", "application/json"])
def test_get_serializer_by_name_or_content_type(key: str) -> None:
    assert get_serializer(key) is JSON


def test_get_serializer_unknown_and_unsupported() -> None:
    with pytest.raises(ConfigurationError, match="unknown serializer"):
        get_serializer("xml")
    with pytest.raises(NotSupportedError):
        get_serializer("msgpack")
    with pytest.raises(NotSupportedError):
        get_serializer("application/x-yaml")


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["json"], {"application/json"}),
        (["json", "application/json"], {"application/json"}),
        (["pickle", "json"], {"application/json", "application/x-python-serialize"}),
        (["application/x-python-serialize"], {"application/x-python-serialize"}),
    ],
)
def test_accepted_content_types(entries: list[str], expected: set[str]) -> None:
    assert accepted_content_types(entries) == expected


def test_accepted_content_types_rejects_a_bare_string() -> None:
    with pytest.raises(ConfigurationError, match="list"):
        accepted_content_types("json")


def test_cloudpickle_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    with pytest.raises(ConfigurationError, match="cloudpickle"):
        accepted_content_types(["cloudpickle"])
    with pytest.raises(ConfigurationError, match="cloudpickle"):
        encode_body([1], "cloudpickle")


def test_cloudpickle_round_trip_when_installed() -> None:
    pytest.importorskip("cloudpickle")
    body, content_type, encoding = encode_body([lambda x: x + 1], "cloudpickle")
    assert (content_type, encoding) == ("application/x-cloudpickle", "binary")
    (fn,) = decode_body(body, content_type, encoding, frozenset({content_type}))
    assert fn(1) == 2


# --- encode_body / decode_body -----------------------------------------------------------------


def test_encode_body_reports_its_content_type() -> None:
    assert encode_body({"a": 1}) == (b'{"a": 1}', "application/json", "utf-8")
    body, content_type, encoding = encode_body((1, 2), "pickle")
    assert (pickle.loads(body), content_type, encoding) == ((1, 2), PICKLE.content_type, "binary")


@pytest.mark.parametrize("value", [object(), {(1, 2): "tuple key"}, {1, 2}])
def test_encode_body_unencodable(value: Any) -> None:
    with pytest.raises(MessageError) as caught:
        encode_body(value)
    assert caught.value.reason == "unencodable"


def test_decode_body_json() -> None:
    assert decode_body(b'{"a": [1]}', "application/json", "utf-8", DEFAULT_ACCEPT) == {"a": [1]}


def test_decode_body_pickle_when_opted_in() -> None:
    accept = accepted_content_types(["json", "pickle"])
    data = pickle.dumps((1, {"k": 2}))
    assert decode_body(data, PICKLE.content_type, "binary", accept) == (1, {"k": 2})


@pytest.mark.parametrize(
    "content_type",
    ["application/x-python-serialize", "application/x-yaml", "text/plain", "application/JSON"],
)
def test_decode_body_refuses_unaccepted_types(content_type: str) -> None:
    with pytest.raises(ContentTypeRefused) as caught:
        decode_body(pickle.dumps(1), content_type, "binary", DEFAULT_ACCEPT)
    assert caught.value.reason == "content-type-refused"


def test_decode_body_refuses_an_accepted_type_without_a_serializer() -> None:
    with pytest.raises(ContentTypeRefused, match="no serializer"):
        decode_body(
            b"\x90", "application/x-msgpack", "binary", frozenset({"application/x-msgpack"})
        )


@pytest.mark.parametrize(
    ("content_type", "encoding", "expected"),
    [
        (None, None, "[1]"),
        (None, "binary", b"[1]"),
        ("application/data", "utf-8", "[1]"),
        ("application/text", "ASCII-8BIT", b"[1]"),
    ],
)
def test_decode_body_hands_back_raw_content_as_kombu_does(
    content_type: str | None, encoding: str | None, expected: str | bytes
) -> None:
    assert decode_body(b"[1]", content_type, encoding, DEFAULT_ACCEPT) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        (b"[1, 2", "application/json", "utf-8"),
        (b"\xff\xfe", "application/json", "utf-8"),
        (b'{"__type__": "datetime", "__value__": "yesterday"}', "application/json", "utf-8"),
        (b'{"__type__": "decimal", "__value__": "one"}', "application/json", "utf-8"),
        (b'{"__type__": "uuid", "__value__": {"nope": 1}}', "application/json", "utf-8"),
        (b'{"__type__": "frobnicate", "__value__": 1}', "application/json", "utf-8"),
        (b"[" * 100_000, "application/json", "utf-8"),
        (b"not a pickle", "application/x-python-serialize", "binary"),
        (b"\xff", None, "utf-8"),
        (b"x", None, "no-such-codec"),
    ],
)
def test_decode_body_undecodable(body: bytes, content_type: str | None, encoding: str) -> None:
    accept = accepted_content_types(["json", "pickle"])
    with pytest.raises(MalformedMessage) as caught:
        decode_body(body, content_type, encoding, accept)
    assert caught.value.reason == "undecodable"


@given(json_values)
def test_decode_body_inverts_encode_body(value: Any) -> None:
    body, content_type, encoding = encode_body(value)
    assert decode_body(body, content_type, encoding, DEFAULT_ACCEPT) == value
