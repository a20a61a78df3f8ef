"""Signing a push and checking a signature. Pure: the time is an argument.

The signed bytes are four lines and then the body::

    <timestamp> LF <method> LF <url> LF <task id> LF <body bytes>

`timestamp` is the `X-Hare-Timestamp` header (whole seconds since the epoch, 1 to 12 decimal
digits), `method` the request method in upper case, `url` the push's URL exactly as it was
given to `app.http_task` or `app.push` (scheme, host, port if given, path and query), `task id`
the `X-Hare-Task-Id` header (also the `Idempotency-Key`), and the body exactly as sent. None
of the four fields can contain a line break, so the string reads back one way only, whatever
the task id holds. The `X-Hare-Signature` header is ``sha256=<hex HMAC-SHA256 of those bytes,
keyed by the secret's UTF-8 bytes>``. With no secret configured there is no signature header
at all: never one keyed by an empty secret.

Signing the method and URL means a signed request cannot be replayed to another endpoint (a
push a producer aimed at a host of its choosing carries a signature for that host's URL only);
signing the task id means a replay cannot change the idempotency key to slip past a
receiver's de-duplication; signing the timestamp lets the receiver refuse old requests
(`tolerance`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

__all__ = (
    "ATTEMPT_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TASK_ID_HEADER",
    "TIMESTAMP_HEADER",
    "canonical",
    "sign",
    "verify",
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
TASK_ID_HEADER = "X-Hare-Task-Id"
ATTEMPT_HEADER = "X-Hare-Attempt"
TIMESTAMP_HEADER = "X-Hare-Timestamp"
SIGNATURE_HEADER = "X-Hare-Signature"
_SCHEME = "sha256="
#: A timestamp: 1 to 12 ASCII digits (year 33658 is far enough; more is an attack on int()).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_BREAKS = frozenset("\r\n")


def canonical(*, timestamp: str, method: str, url: str, task_id: str, body: bytes) -> bytes:
    """The bytes a signature covers; `ValueError` when a field holds a line break.

    >>> canonical(timestamp="1700000000", method="POST", url="https://svc/h?a=1",
    ...           task_id="abc", body=b'{"a":1}')
    b'1700000000\\nPOST\\nhttps://svc/h?a=1\\nabc\\n{"a":1}'
    """
    fields = {"timestamp": timestamp, "method": method, "url": url, "task id": task_id}
    for name, value in fields.items():
        if _BREAKS.intersection(value):
            raise ValueError(f"a signed {name} cannot contain a line break: {value!r}")
    return f"{timestamp}\n{method}\n{url}\n{task_id}\n".encode() + body


def sign(secret: str, *, timestamp: str, method: str, url: str, task_id: str, body: bytes) -> str:
    """The `X-Hare-Signature` value: ``sha256=<hex>``. `secret` must not be empty."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    message = canonical(timestamp=timestamp, method=method, url=url, task_id=task_id, body=body)
    return _SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """Whether `headers` carry a valid signature of `method url` with `body` by `secret` (or
    by any of several secrets, while one is rotated), made within `tolerance` seconds of `now`.

    Anything malformed is `False`, never an exception: a header missing, not a string, or not
    ASCII; a timestamp that is not 1 to 12 digits; a field with a line break; a body that is
    not bytes. Only a `secret` that is not a string or a sequence of strings raises
    `TypeError`: that is the receiver's configuration, not the request.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not all(isinstance(one, str) for one in secrets):
        raise TypeError("secret must be a string or a sequence of strings")
    given = _given(headers)
    if given is None or not isinstance(body, bytes | bytearray):
        return False
    timestamp, task_id, offered = given
    if not (isinstance(method, str) and isinstance(url, str)) or _BREAKS.intersection(method + url):
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    fields = {"timestamp": timestamp, "method": method, "url": url, "task_id": task_id}
    expected = [sign(one, **fields, body=bytes(body)).encode() for one in secrets if one]
    return any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered)


def _given(headers: Mapping[str, str]) -> tuple[str, str, list[bytes]] | None:
    """The timestamp, task id and offered signatures of `headers`; None if any is malformed."""
    wanted = {TIMESTAMP_HEADER.lower(), TASK_ID_HEADER.lower(), SIGNATURE_HEADER.lower()}
    found: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower() if isinstance(name, str) else None
        if lower in wanted:
            if not isinstance(value, str) or not value.isascii():
                return None
            found[lower] = value
    timestamp = found.get(TIMESTAMP_HEADER.lower(), "")
    task_id = found.get(TASK_ID_HEADER.lower(), "")
    signature = found.get(SIGNATURE_HEADER.lower(), "")
    if not _TIMESTAMP.fullmatch(timestamp) or not task_id or _BREAKS.intersection(task_id):
        return None
    offered = [part.strip().encode() for part in signature.split(",")]
    offered = [one for one in offered if one.startswith(_SCHEME.encode())]
    return (timestamp, task_id, offered) if offered else None
