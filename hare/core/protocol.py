"""Celery task protocol v2 (and v1, read only) to and from `hare.core.message.Message`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hare.core.codec import decode_body, encode_body
from hare.core.envelope import Properties
from hare.core.message import Embed, Message
from hare.core.reprs import safe_repr
from hare.core.values import moment, signatures, utc
from hare.errors import ConfigurationError, MalformedMessage

__all__ = ("decode", "encode")

#: Headers that map onto `Message` fields; never copied into `Message.headers`.
_FIELDS = frozenset(
    "lang task id shadow eta expires group group_index retries timelimit root_id parent_id"
    " argsrepr kwargsrepr origin ignore_result".split()
)
#: The protocol v2 header names (a message's own `headers` may not use them).
HEADER_FIELDS = _FIELDS
# Celery 5.3+ headers with no `Message` field. At their defaults they are dropped on decode and
# written back by encode; any other value stays in `Message.headers`, so a republish (retry,
# chain step) keeps it.
_DEFAULTED: Mapping[str, Any] = {"replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}}

_NO_EMBED = Embed()
_EMPTY: Mapping[str, Any] = {}


def _expiration(expires: datetime, now: float) -> str:
    expires = utc(expires)
    # round, not int: float subtraction turns "3600 s from now" into 3599.9999998.
    remaining = round((expires.timestamp() - now) * 1000)
    return str(remaining) if remaining > 0 else "0"


def encode(
    message: Message, *, now: float, serializer: str | None = None
) -> tuple[bytes, Properties]:
    """Encode `message` as Celery 5.7 publishes it: a `[args, kwargs, embed]` body and headers.

    `serializer` (a name or content type) defaults to the message's `content_type`; `now`
    (epoch seconds) turns `expires` into the AMQP per-message TTL.

    Raises `ConfigurationError` when `message.headers` would overwrite a protocol field, and
    `MessageError` (reason "unencodable") when the body cannot be serialized.
    """
    m = message
    extra = m.headers
    if extra and not _FIELDS.isdisjoint(extra):
        clash = ", ".join(sorted(_FIELDS.intersection(extra)))
        raise ConfigurationError(f"task {m.task}: headers would overwrite protocol fields: {clash}")
    embed = m.embed
    kwargs = m.kwargs if type(m.kwargs) is dict else dict(m.kwargs)
    body, content_type, content_encoding = encode_body(
        (
            m.args,
            kwargs,
            {
                # Lists, not tuples: a pickle body reaches Celery as is, and it pops `chain`.
                "callbacks": None if embed.callbacks is None else list(embed.callbacks),
                "errbacks": None if embed.errbacks is None else list(embed.errbacks),
                "chain": None if embed.chain is None else list(embed.chain),
                "chord": embed.chord,
            },
        ),
        serializer or m.content_type,
    )
    expires = m.expires
    headers = _v2_headers(m, kwargs)
    if extra:
        headers.update(extra)
    return body, Properties(
        content_type=content_type,
        content_encoding=content_encoding,
        headers=headers,
        delivery_mode=2,
        priority=m.priority,
        correlation_id=m.correlation_id or m.id,
        reply_to=m.reply_to or None,
        expiration=None if expires is None else _expiration(expires, now),
    )


def _v2_headers(m: Message, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Celery 5.7's protocol v2 headers of `m` (its `headers` extras are added by the caller)."""
    eta, expires = m.eta, m.expires
    return {
        "lang": "py",
        "task": m.task,
        "id": m.id,
        "shadow": m.shadow,
        "eta": None if eta is None else eta.isoformat(),
        "expires": None if expires is None else expires.isoformat(),
        "group": m.group,
        "group_index": m.group_index,
        "retries": m.retries,
        "timelimit": [m.timelimit[0], m.timelimit[1]],
        "root_id": m.root_id or m.id,
        "parent_id": m.parent_id,
        "argsrepr": safe_repr(m.args) if m.argsrepr is None else m.argsrepr,
        "kwargsrepr": safe_repr(kwargs) if m.kwargsrepr is None else m.kwargsrepr,
        "origin": m.origin,
        "ignore_result": m.ignore_result,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }


def decode(body: bytes, properties: Properties, *, accept: frozenset[str]) -> Message:
    """Decode a delivered task message, protocol v2 or (with no `task` header) v1.

    `accept` holds content types (see `hare.core.codec.accepted_content_types`). Raises
    `ContentTypeRefused`, or `MalformedMessage` whose `reason` is one of "undecodable",
    "missing-header", "bad-body", "bad-header", "bad-eta", "bad-expires".
    """
    payload = decode_body(body, properties.content_type, properties.content_encoding, accept)
    headers = properties.headers or _EMPTY
    if "task" in headers:
        return _from_v2(payload, headers, properties)
    if isinstance(payload, dict):
        # Celery falls back to protocol v1 when the `task` header is absent.
        return _from_v1(payload, headers, properties)
    raise MalformedMessage(
        "no task header, and the body is not a protocol v1 dict", reason="missing-header"
    )


def _from_v2(payload: Any, headers: Mapping[str, Any], properties: Properties) -> Message:
    task, task_id = _identity(headers.get("task"), headers.get("id"), "header")
    args, kwargs, embed = _body(payload)
    get = headers.get
    return Message(
        id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        embed=embed,
        eta=_moment(get("eta"), "eta"),
        expires=_moment(get("expires"), "expires"),
        retries=_retries(get("retries"), "bad-header"),
        root_id=_opt_id(get("root_id"), "root_id"),
        parent_id=_opt_id(get("parent_id"), "parent_id"),
        group=_opt_id(get("group"), "group"),
        group_index=_group_index(get("group_index")),
        timelimit=_timelimit(get("timelimit"), "bad-header"),
        shadow=_opt_id(get("shadow"), "shadow"),
        argsrepr=_opt_text(get("argsrepr")),
        kwargsrepr=_opt_text(get("kwargsrepr")),
        origin=_opt_text(get("origin")),
        # Celery reads a missing ignore_result as False; None (send_task) means "the task decides".
        ignore_result=_ignore_result(get("ignore_result", False)),
        reply_to=properties.reply_to,
        correlation_id=properties.correlation_id,
        priority=properties.priority,
        headers=_extra_headers(headers),
        content_type=properties.content_type or "application/json",
    )


def _from_v1(body: dict[str, Any], headers: Mapping[str, Any], properties: Properties) -> Message:
    task, task_id = _identity(body.get("task"), body.get("id"), "v1 body field")
    args, kwargs = body.get("args", ()), body.get("kwargs")
    if kwargs is None:
        kwargs = {}
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise MalformedMessage("v1 args must be a list and kwargs a dict", reason="bad-body")
    chord = body.get("chord")
    if chord is not None and not isinstance(chord, dict):
        raise MalformedMessage("v1 chord must be a signature dict or null", reason="bad-body")
    # v1 named the group `taskset`; Celery's proto1_to_proto2 lets it win over `group`.
    group = body["taskset"] if "taskset" in body else body.get("group")
    return Message(
        id=task_id,
        task=task,
        args=tuple(args),
        kwargs=kwargs,
        embed=Embed(
            callbacks=_signatures(body.get("callbacks"), "callbacks"),
            errbacks=_signatures(body.get("errbacks"), "errbacks"),
            chord=chord,
        ),
        # v1's `utc: false` meant naive times in the sender's zone; hare has no zone to apply.
        eta=_moment(body.get("eta"), "eta"),
        expires=_moment(body.get("expires"), "expires"),
        retries=_retries(body.get("retries"), "bad-body"),
        group=_opt_id(group, "group"),
        timelimit=_timelimit(body.get("timelimit"), "bad-body"),
        reply_to=properties.reply_to,
        correlation_id=properties.correlation_id,
        priority=properties.priority,
        headers=_extra_headers(headers),
        content_type=properties.content_type or "application/json",
    )


def _identity(task: object, task_id: object, where: str) -> tuple[str, str]:
    if isinstance(task, str) and task and isinstance(task_id, str) and task_id:
        return task, task_id
    name, value = ("id", task_id) if isinstance(task, str) and task else ("task", task)
    raise MalformedMessage(
        f"{where} {name!r} must be a non-empty string, got {value!r:.80}", reason="missing-header"
    )


def _body(payload: Any) -> tuple[tuple[Any, ...], dict[str, Any], Embed]:
    if isinstance(payload, str | bytes):
        raise MalformedMessage(
            "the body was left raw: the message has no serializer content type", reason="bad-body"
        )
    # A pickle body is a tuple, a JSON one a list.
    if not isinstance(payload, list | tuple) or len(payload) != 3:
        raise MalformedMessage(
            f"the body must be [args, kwargs, embed], got {type(payload).__name__}"
            + (f" of {len(payload)}" if isinstance(payload, list | tuple) else ""),
            reason="bad-body",
        )
    args, kwargs, embed = payload
    if not isinstance(args, list | tuple):
        raise MalformedMessage(f"args must be a list, not {type(args).__name__}", reason="bad-body")
    if not isinstance(kwargs, dict):
        raise MalformedMessage(
            f"kwargs must be a dict, not {type(kwargs).__name__}", reason="bad-body"
        )
    return tuple(args), kwargs, _embed(embed)


def _embed(value: Any) -> Embed:
    if value is None:
        return _NO_EMBED
    if not isinstance(value, dict):
        raise MalformedMessage(
            f"embed must be a dict or null, not {type(value).__name__}", reason="bad-body"
        )
    get = value.get
    callbacks, errbacks, chain, chord = (
        get("callbacks"),
        get("errbacks"),
        get("chain"),
        get("chord"),
    )
    if callbacks is None and errbacks is None and chain is None and chord is None:
        return _NO_EMBED
    if chord is not None and not isinstance(chord, dict):
        raise MalformedMessage("embed chord must be a signature dict or null", reason="bad-body")
    return Embed(
        callbacks=_signatures(callbacks, "callbacks"),
        errbacks=_signatures(errbacks, "errbacks"),
        chain=_signatures(chain, "chain"),
        chord=chord,
    )


def _signatures(value: Any, name: str) -> tuple[Mapping[str, Any], ...] | None:
    try:
        return signatures(value)
    except ValueError as exc:
        raise MalformedMessage(f"embed {name} {exc}", reason="bad-body") from None


def _moment(value: object, name: str) -> datetime | None:
    # Celery sends a naive eta as given and its worker reads it as UTC.
    try:
        return moment(value)
    except ValueError as exc:
        raise MalformedMessage(f"{name} {exc}", reason=f"bad-{name}") from None


def _retries(value: object, reason: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedMessage(f"retries must be an int >= 0, got {value!r:.80}", reason=reason)
    return value


def _timelimit(value: object, reason: str) -> tuple[float | None, float | None]:
    if value is None:
        return (None, None)
    if isinstance(value, list | tuple) and len(value) == 2:
        hard, soft = value
        if _is_limit(hard) and _is_limit(soft):
            return (hard, soft)
    raise MalformedMessage(
        f"timelimit must be [hard, soft] of seconds or null, got {value!r:.80}", reason=reason
    )


def _is_limit(value: object) -> bool:
    return value is None or (type(value) in (int, float) and value >= 0)  # type: ignore[operator]


def _opt_id(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedMessage(
        f"{name} must be a string or null, got {value!r:.80}", reason="bad-header"
    )


def _opt_text(value: object) -> str | None:
    # Informational fields (argsrepr, origin): a wrong type is harmless, so it is tolerated.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):  # pamqp hands back non-UTF-8 long strings as bytes
        return value.decode("utf-8", "replace")
    return str(value)


def _group_index(value: object) -> int | None:
    if value is None or (type(value) is int and value >= 0):
        return value
    raise MalformedMessage(
        f"group_index must be an int >= 0 or null, got {value!r:.80}", reason="bad-header"
    )


def _ignore_result(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise MalformedMessage(
        f"ignore_result must be a bool or null, got {value!r:.80}", reason="bad-header"
    )


def _extra_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    extra = {key: value for key, value in headers.items() if key not in _FIELDS}
    for key, default in _DEFAULTED.items():
        if key in extra and extra[key] == default:
            del extra[key]
    return extra
