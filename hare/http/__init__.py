"""HTTP push tasks: a task is a URL; a worker sends the request; a 2xx means done.

`app.http_task(url, ...)` defines a hook (`.delay(json=...)`, `.apply_async(...)`);
`app.push(url, json=...)` sends a one-off push. Each push is an ordinary task message for
the built-in task `hare.http.push`, so it goes through queues, the delay ladder, retries,
dead letters, revocation and drain like any task. docs/http-tasks.md has the whole story.

The pure parts (`spec`, `signature`, `headers`, `retry_after`, `classify`) do no I/O;
`client` is the only module that imports httpx (an optional dependency: `hare-queue[http]`),
and only a worker delivering a push imports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from hare.http import signature as _signature
from hare.http.spec import PUSH_TASK as PUSH_TASK
from hare.http.task import HttpTask as HttpTask
from hare.http.task import Pushes as Pushes

__all__ = ("PUSH_TASK", "HttpTask", "Pushes", "sign", "verify_signature")

sign = _signature.sign


def verify_signature(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    tolerance: float = 300.0,
) -> bool:
    """Whether a push request is genuine: its `X-Hare-Signature` is the HMAC-SHA256 by
    `secret` (or by any of several, while rotating one) of its timestamp, `method`, `url`,
    task id and `body` (the raw bytes received), and its `X-Hare-Timestamp` is within
    `tolerance` seconds of now.

    `method` is the request's method; `url` is this endpoint's URL exactly as the producer
    configured it (`app.http_task(url)`), query included: the receiver knows its own URL,
    whatever proxies rewrote on the way. `headers` is the request's headers, any mapping
    (names are matched case-insensitively). A malformed request is `False`, never an error.
    """
    return _signature.verify(
        secret, headers, body, method=method, url=url, now=time.time(), tolerance=tolerance
    )
