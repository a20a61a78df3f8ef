"""What a push's response (or its failure to get one) means. Pure: time and rng are arguments.

======================================  =====================================================
the server answered / the request...    the push
======================================  =====================================================
2xx                                     is done; its result is `result_of(response)`
429, 503 with a valid Retry-After       is retried after it (capped at `retry_after_max`)
429, 503 without one; 408; other 5xx    is retried with the task's backoff
timed out, refused, reset, closed       is retried with the task's backoff
no turn at the host within the timeout  is retried with the task's backoff (`http-host-busy`)
3xx (redirects not followed)            is dead-lettered `http-3xx` (301, 302...: the status
                                        is in the reason), with the Location in the detail
other 4xx                               is dead-lettered `http-<status>` at once
======================================  =====================================================

A retry counts against the task's `max_retries`; past it the push is dead-lettered
`retries-exhausted` with the last status or error in the detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hare.core.retry import RetryPolicy, Uniform, backoff
from hare.http.retry_after import parse_retry_after

__all__ = (
    "EXCERPT_BYTES",
    "Delivered",
    "GiveUp",
    "Response",
    "RetryLater",
    "classify",
    "excerpt",
    "result_of",
    "retry_delay",
    "transport_failure",
)

#: How much of a response body a result or a dead letter keeps.
EXCERPT_BYTES = 1024
#: Response headers a result keeps (lower-case); never `set-cookie` and the like.
_KEPT_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "etag",
    "last-modified",
    "date",
    "retry-after",
    "x-request-id",
    "request-id",
)
_RETRIED_STATUSES = frozenset({408, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """What a server answered: `headers` with lower-case names, the start of `body`."""

    status: int
    reason: str = ""
    headers: Mapping[str, str]
    body: bytes = b""
    #: Seconds from sending the request to reading the response.
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Delivered:
    """A 2xx: the push is done, and this is its result."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryLater:
    """Worth another attempt: after `after` seconds (the server's Retry-After), or by the
    task's backoff when `after` is None."""

    reason: str
    detail: str
    status: int | None = None
    after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveUp:
    """Never worth another attempt: dead-letter with `reason` and `detail` now."""

    reason: str
    detail: str
    status: int | None = None


Step = Delivered | RetryLater | GiveUp


def classify(
    response: Response, *, method: str, url: str, attempt: int, now: float
) -> Delivered | RetryLater | GiveUp:
    """What `response` to attempt number `attempt` of `method url` means for the push."""
    status = response.status
    if 200 <= status < 300:
        return Delivered(result_of(response, attempt))
    what = f"HTTP {status}{' ' + response.reason if response.reason else ''} from {method} {url}"
    body = excerpt(response.body)
    detail = f"{what}: {body}" if body else what
    reason = f"http-{status}"
    if 300 <= status < 400:
        location = response.headers.get("location", "(none)")
        return GiveUp(
            reason=reason,
            detail=f"{what} to {location} (redirects are not followed unless the push says "
            "follow_redirects=True: point it at the final URL)",
            status=status,
        )
    if status in _RETRY_AFTER_STATUSES:
        after = parse_retry_after(response.headers.get("retry-after"), now)
        return RetryLater(reason=reason, detail=detail, status=status, after=after)
    if status in _RETRIED_STATUSES or 500 <= status < 600:
        return RetryLater(reason=reason, detail=detail, status=status)
    return GiveUp(reason=reason, detail=detail, status=status)


def transport_failure(kind: str, detail: str, *, method: str, url: str) -> RetryLater:
    """No response: `kind` is `timeout`, `connect` (refused, unreachable, TLS),
    `disconnected` (reset or closed before the response was read in full) or `host-busy`
    (no turn at the origin's `max_per_host` bound within the timeout: no request made)."""
    return RetryLater(reason=f"http-{kind}", detail=f"{method} {url}: {detail}")


def retry_delay(
    step: RetryLater, policy: RetryPolicy, retries: int, rng: Uniform, cap: float
) -> tuple[float, bool]:
    """Seconds until the next attempt, and whether the server's Retry-After was capped."""
    if step.after is None:
        return backoff(policy, retries, rng), False
    return min(step.after, cap), step.after > cap


def result_of(response: Response, attempt: int) -> dict[str, Any]:
    """A push's result: small, and without cookies."""
    return {
        "status": response.status,
        "headers": {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers},
        "body": excerpt(response.body),
        "elapsed": round(response.elapsed, 6),
        "attempt": attempt,
    }


def excerpt(body: bytes) -> str:
    """The first `EXCERPT_BYTES` of a body as text (undecodable bytes replaced)."""
    text = body[:EXCERPT_BYTES].decode("utf-8", "replace")
    return text + ("..." if len(body) > EXCERPT_BYTES else "")
