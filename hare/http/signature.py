"""Signing a push and checking a signature. Pure: the time is an argument.

The signed string is ``<timestamp>.<task id>.<body bytes>``: the `X-Hare-Timestamp` header
(whole seconds since the epoch, as decimal text), the `X-Hare-Task-Id` header (also the
`Idempotency-Key`), and the request body exactly as sent. The `X-Hare-Signature` header is
``sha256=<hex HMAC-SHA256 of that string, keyed by the secret's UTF-8 bytes>``. With no secret
configured there is no signature header at all: never one keyed by an empty secret.

Signing the task id as well as the body means a replay cannot change the idempotency key
to slip past a receiver's de-duplication; signing the timestamp lets the receiver refuse
old requests (`tolerance`).
"""

from __future__ import annotations

import hashlib
import hmac
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


def canonical(timestamp: str, task_id: str, body: bytes) -> bytes:
    """The bytes a signature covers.

    >>> canonical("1700000000", "abc", b'{"a":1}')
    b'1700000000.abc.{"a":1}'
    """
    return f"{timestamp}.{task_id}.".encode() + body


def sign(secret: str, timestamp: str, task_id: str, body: bytes) -> str:
    """The `X-Hare-Signature` value: ``sha256=<hex>``. `secret` must not be empty."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    digest = hmac.new(secret.encode(), canonical(timestamp, task_id, body), hashlib.sha256)
    return _SCHEME + digest.hexdigest()


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """Whether `headers` carry a valid signature of `body` by `secret` (or by any of several
    secrets, while one is rotated), made within `tolerance` seconds of `now`."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    lower = {str(k).lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    task_id = lower.get(TASK_ID_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not (timestamp.isascii() and timestamp.isdigit()) or not given.startswith(_SCHEME):
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    offered = [part.strip() for part in given.split(",")]
    return any(
        hmac.compare_digest(sign(one, timestamp, task_id, body), candidate)
        for one in secrets
        if one
        for candidate in offered
    )
