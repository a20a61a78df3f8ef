"""The headers a push request carries, and masking them for logs. Pure: no I/O, no clock.

On top of the push's own headers (and its hook's `secret_headers`, added by the worker):

* `Idempotency-Key` and `X-Hare-Task-Id`: the task id, the same on every attempt;
* `X-Hare-Attempt`: 1 on the first attempt, then 2, 3... (the task's retries + 1);
* `X-Hare-Timestamp`: when this attempt was made, whole seconds since the epoch;
* `X-Hare-Signature`: ``sha256=<hex>`` (`hare.http.signature`), only when a secret is set;
* `User-Agent`: ``hare/<version>``, unless the push names its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from hare.http.signature import (
    ATTEMPT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TASK_ID_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from hare.http.spec import SENSITIVE_HEADERS

__all__ = ("mask", "outgoing")

_MASKED = SENSITIVE_HEADERS | {SIGNATURE_HEADER.lower()}


def outgoing(
    headers: Mapping[str, str],
    *,
    method: str,
    url: str,
    task_id: str,
    attempt: int,
    timestamp: int,
    body: bytes,
    secret: str | None,
    user_agent: str,
) -> dict[str, str]:
    """The headers of a request for `method url`: `headers` (checked when the push was sent)
    and hare's own, signed by `secret` when there is one."""
    out = dict(headers)
    if not any(name.lower() == "user-agent" for name in out):
        out["User-Agent"] = user_agent
    stamp = str(timestamp)
    out[IDEMPOTENCY_HEADER] = task_id
    out[TASK_ID_HEADER] = task_id
    out[ATTEMPT_HEADER] = str(attempt)
    out[TIMESTAMP_HEADER] = stamp
    if secret:
        out[SIGNATURE_HEADER] = sign(
            secret, timestamp=stamp, method=method, url=url, task_id=task_id, body=body
        )
    return out


def mask(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with credentials and the signature replaced by `***`, for a log line."""
    return {k: "***" if k.lower() in _MASKED else v for k, v in headers.items()}
