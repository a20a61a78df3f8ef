"""Serializers for message bodies: kombu-compatible JSON, pickle and opt-in cloudpickle."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from types import MappingProxyType, ModuleType
from typing import Any

from hare.errors import (
    ConfigurationError,
    ContentTypeRefused,
    HareError,
    MalformedMessage,
    MessageError,
    NotSupportedError,
)

__all__ = (
    "CLOUDPICKLE",
    "DEFAULT_ACCEPT",
    "JSON",
    "PICKLE",
    "SERIALIZERS",
    "Serializer",
    "decode_body",
    "encode_body",
    "get_serializer",
    "json_dumps",
    "json_loads",
    "accepted_content_types",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Serializer:
    """One way of turning a body into bytes and back, named as Celery names it."""

    name: str
    content_type: str
    content_encoding: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


# --- JSON, with kombu's type tags (kombu/utils/json.py, kombu >= 5.3) -------------------------


def _tag(kind: str, value: Any) -> dict[str, Any]:
    return {"__type__": kind, "__value__": value}


def _default(value: Any) -> Any:
    """Encode what JSON cannot express; json calls this only for types it does not know."""
    # kombu honours a `__json__` reducer before anything else.
    reducer = getattr(value, "__json__", None)
    if reducer is not None:
        return reducer()
    # datetime before date: a datetime is also a date.
    if isinstance(value, datetime):
        return _tag("datetime", value.isoformat())
    if isinstance(value, date):
        return _tag("date", value.isoformat())
    if isinstance(value, time):
        return _tag("time", value.isoformat())
    if isinstance(value, Decimal):
        return _tag("decimal", str(value))
    if isinstance(value, uuid.UUID):
        return _tag("uuid", {"hex": value.hex, "version": value.version})
    if isinstance(value, bytes):
        try:
            return _tag("bytes", value.decode("utf-8"))
        except UnicodeDecodeError:
            return _tag("base64", base64.b64encode(value).decode("ascii"))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode_uuid(value: Any) -> uuid.UUID:
    # kombu writes {"hex", "version"} and reads it back with UUID(**value), which fails for
    # versions outside 1-5 on Python 3.11 (e.g. uuid7). `hex` alone holds all 128 bits, so
    # reading only it gives the same UUID and never fails. A plain string is also taken, as
    # hand-written senders use it.
    if isinstance(value, str):
        return uuid.UUID(value)
    return uuid.UUID(hex=value["hex"])


_DECODERS: Mapping[str, Callable[[Any], Any]] = MappingProxyType(
    {
        "datetime": datetime.fromisoformat,
        "date": lambda value: datetime.fromisoformat(value).date(),
        "time": time.fromisoformat,
        "decimal": Decimal,
        "uuid": _decode_uuid,
        "bytes": lambda value: value.encode("utf-8"),
        "base64": lambda value: base64.b64decode(value.encode("utf-8")),
    }
)


def _object_hook(obj: dict[str, Any]) -> Any:
    if "__type__" in obj and len(obj) == 2 and "__value__" in obj:
        decoder = _DECODERS.get(obj["__type__"])
        if decoder is None:
            # kombu raises too: a tag it does not know is an error, not a plain dict.
            raise ValueError(f"unsupported JSON type tag {obj['__type__']!r}")
        return decoder(obj["__value__"])
    return obj


# Built once: json.dumps/loads with any keyword argument construct a new coder per call.
# Default separators and ensure_ascii, as kombu uses them, so bodies match Celery's byte for byte.
_ENCODER = json.JSONEncoder(default=_default)
_DECODER = json.JSONDecoder(object_hook=_object_hook)


def json_dumps(value: Any) -> bytes:
    """Serialize `value` to JSON as kombu does; raise TypeError or ValueError if it cannot be."""
    return _ENCODER.encode(value).encode("ascii")


def json_loads(data: bytes | str) -> Any:
    """Parse kombu-flavoured JSON; raise ValueError (or the tag decoder's error) if it cannot."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return _DECODER.decode(data)


# --- pickle and cloudpickle ---------------------------------------------------------------------


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.DEFAULT_PROTOCOL)


def _cloudpickle() -> ModuleType:
    try:
        import cloudpickle
    except ImportError as exc:
        raise ConfigurationError(
            "the cloudpickle serializer needs the cloudpickle package: "
            "pip install 'hare-queue[cloudpickle]'"
        ) from exc
    module: ModuleType = cloudpickle
    return module


def _cloudpickle_dumps(value: Any) -> bytes:
    data: bytes = _cloudpickle().dumps(value, protocol=pickle.DEFAULT_PROTOCOL)
    return data


def _cloudpickle_loads(data: bytes) -> Any:
    return _cloudpickle().loads(data)


JSON = Serializer(
    name="json",
    content_type="application/json",
    content_encoding="utf-8",
    dumps=json_dumps,
    loads=json_loads,
)
PICKLE = Serializer(
    name="pickle",
    content_type="application/x-python-serialize",
    content_encoding="binary",
    dumps=_pickle_dumps,
    loads=pickle.loads,
)
CLOUDPICKLE = Serializer(
    name="cloudpickle",
    content_type="application/x-cloudpickle",
    content_encoding="binary",
    dumps=_cloudpickle_dumps,
    loads=_cloudpickle_loads,
)

#: Every serializer hare has, by name. Fixed: there is no registration at run time.
SERIALIZERS: Mapping[str, Serializer] = MappingProxyType(
    {s.name: s for s in (JSON, PICKLE, CLOUDPICKLE)}
)
_BY_KEY: Mapping[str, Serializer] = MappingProxyType(
    {**SERIALIZERS, **{s.content_type: s for s in SERIALIZERS.values()}}
)

#: Content types accepted unless configured otherwise: JSON only. Pickle is opt-in.
DEFAULT_ACCEPT: frozenset[str] = frozenset({JSON.content_type})

# Celery serializers hare knows of but does not implement: named, so the error says so.
_UNSUPPORTED = frozenset({"yaml", "application/x-yaml", "msgpack", "application/x-msgpack", "auth"})

# kombu decodes these without an accept check and without a serializer (raw bytes or text);
# a missing content type is read as "application/data".
_TRUSTED_RAW = frozenset({"application/data", "application/text"})
_SKIP_DECODE = frozenset({"binary", "ascii-8bit"})


def get_serializer(name: str) -> Serializer:
    """Return the serializer called `name` (`"json"`) or with that content type."""
    found = _BY_KEY.get(name)
    if found is None:
        if name in _UNSUPPORTED:
            raise NotSupportedError(f"serializer {name!r}", "hare has json, pickle, cloudpickle")
        raise ConfigurationError(f"unknown serializer {name!r}; hare has json, pickle, cloudpickle")
    if found is CLOUDPICKLE:
        _cloudpickle()
    return found


def accepted_content_types(accept: Iterable[str]) -> frozenset[str]:
    """Turn `accept_content` entries, names or content types as Celery allows, into content types.

    >>> sorted(accepted_content_types(["json", "application/x-python-serialize"]))
    ['application/json', 'application/x-python-serialize']
    """
    if isinstance(accept, str):
        raise ConfigurationError(
            f"accept_content must be a list of names, not the string {accept!r}"
        )
    return frozenset(get_serializer(entry).content_type for entry in accept)


def encode_body(value: Any, serializer: str = "json") -> tuple[bytes, str, str]:
    """Serialize `value`; return the body, its content type and its content encoding.

    Raises `MessageError` (reason "unencodable") when the value cannot be serialized.
    """
    chosen = get_serializer(serializer)
    try:
        body = chosen.dumps(value)
    except HareError:
        raise
    except Exception as exc:  # a user's value may fail in any way its type likes
        raise MessageError(
            f"cannot serialize the body with {chosen.name}: {exc}", reason="unencodable"
        ) from exc
    return body, chosen.content_type, chosen.content_encoding


def decode_body(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    accept: frozenset[str],
) -> Any:
    """Deserialize a body, refusing content types outside `accept` (resolved content types).

    Mirrors kombu's `loads`: a missing content type counts as `application/data`, which (like
    `application/text`) is trusted and handed back raw: `bytes` for a binary encoding, else
    text in `content_encoding` (default UTF-8). A task body must be structured, so the
    protocol layer rejects such a message as a bad body rather than refusing its type. A
    serializer reads its own bytes whatever `content_encoding` says (kombu reads JSON as UTF-8).

    Raises `ContentTypeRefused` (reason "content-type-refused") and `MalformedMessage`
    (reason "undecodable").
    """
    kind = content_type or "application/data"
    if kind in _TRUSTED_RAW:
        return _decode_raw(body, content_encoding)
    chosen = _BY_KEY.get(kind)
    if kind not in accept or chosen is None:
        why = "not in accept_content" if kind not in accept else "hare has no serializer for it"
        raise ContentTypeRefused(f"refusing content type {kind!r}: {why}")
    try:
        return chosen.loads(body)
    except HareError:
        raise
    except Exception as exc:  # the bytes come off the network: any failure is theirs
        raise MalformedMessage(
            f"cannot decode a {kind} body: {type(exc).__name__}: {exc}", reason="undecodable"
        ) from exc


def _decode_raw(body: bytes, content_encoding: str | None) -> bytes | str:
    encoding = (content_encoding or "utf-8").lower()
    if encoding in _SKIP_DECODE:
        return body
    try:
        return body.decode(encoding)
    except (LookupError, ValueError) as exc:
        raise MalformedMessage(
            f"cannot decode a raw body as {encoding}: {exc}", reason="undecodable"
        ) from exc
