"""What a push is on the wire, checked when it is sent. Pure: no I/O, no clock.

A push is an ordinary task message for the built-in task `hare.http.push` whose kwargs are
the `PushSpec` below (`to_kwargs`): the method, URL, headers and body of the request, how the
worker sends it (timeout, per-host bound, redirects) and its retry policy. Everything is
checked here on the sending side (`InvalidPush`, a `ConfigurationError`), and read back
(`from_kwargs`) on the worker's, where a message that does not hold together is a dead
letter (`http-malformed`), never a crash.
"""

from __future__ import annotations

import base64
import binascii
import json as json_module
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hare.core.retry import RetryPolicy
from hare.errors import ConfigurationError
from hare.http.errors import InvalidPush

__all__ = (
    "BODILESS",
    "DEFAULT_RETRY",
    "METHODS",
    "PUSH_TASK",
    "RESERVED_HEADERS",
    "SENSITIVE_HEADERS",
    "PushSpec",
    "Sending",
    "check_headers",
    "check_method",
    "check_url",
    "encode_body",
)

#: The built-in task that delivers pushes.
PUSH_TASK = "hare.http.push"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Methods whose pushes may have no body at all (neither `json=` nor `data=`).
BODILESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
#: Headers hare sets on every request (lower-case): a push may not set them.
RESERVED_HEADERS = frozenset(
    {
        "idempotency-key",
        "x-hare-task-id",
        "x-hare-attempt",
        "x-hare-timestamp",
        "x-hare-signature",
        "host",
        "content-length",
        "transfer-encoding",
    }
)
#: Credentials: never in a message (hence the broker and its dead letters). They go in a
#: hook's `secret_headers=`, which stay in the worker's process.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: A push task's retry policy unless it names its own: 10 retries, exponential backoff from
#: 1 s (1, 2, 4... capped at 10 minutes), full jitter.
DEFAULT_RETRY = RetryPolicy(
    max_retries=10, default_retry_delay=1.0, retry_backoff=True, retry_backoff_max=600.0
)
#: Seconds a Retry-After is honoured up to; a longer one is capped (and logged).
DEFAULT_RETRY_AFTER_MAX = 86400.0
_RETRY_FIELDS = (
    "max_retries",
    "default_retry_delay",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sending:
    """How a worker sends a push: `None` means the app's setting (`http_timeout`,
    `http_max_per_host`)."""

    timeout: float | None = None
    max_per_host: int | None = None
    follow_redirects: bool = False
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX

    def __post_init__(self) -> None:
        for name in ("timeout", "retry_after_max"):
            value = getattr(self, name)
            if value is not None and not (_number(value) and value > 0):
                raise InvalidPush(f"{name} must be a positive number of seconds, not {value!r}")
        limit = self.max_per_host
        if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool)):
            raise InvalidPush(f"max_per_host must be a positive integer, not {limit!r}")
        if limit is not None and limit < 1:
            raise InvalidPush(f"max_per_host must be a positive integer, not {limit!r}")
        if not isinstance(self.follow_redirects, bool):
            raise InvalidPush("follow_redirects must be True or False")


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSpec:
    """One HTTP request to make, and how: the kwargs of a `hare.http.push` message."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: The `http_task` it came from (its name), whose worker-side options apply.
    hook: str | None = None
    sending: Sending = Sending()
    retry: RetryPolicy = DEFAULT_RETRY

    def to_kwargs(self) -> dict[str, Any]:
        """The message's kwargs (JSON-able): the body as text when it is UTF-8, else base64."""
        try:
            body, encoding = self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(self.body).decode("ascii"), "base64"
        return {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "body": body,
            "body_encoding": encoding,
            "hook": self.hook,
            "sending": asdict(self.sending),
            "retry": {name: getattr(self.retry, name) for name in _RETRY_FIELDS},
        }

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> PushSpec:
        """Read a message's kwargs back; `InvalidPush` saying what is wrong with them."""
        try:
            body = _decode_body(kwargs.get("body", ""), kwargs.get("body_encoding", "utf-8"))
            sending = Sending(**dict(kwargs.get("sending") or {}))
            retry = RetryPolicy(**dict(kwargs.get("retry") or {}))
            hook = kwargs.get("hook")
            if hook is not None and not isinstance(hook, str):
                raise InvalidPush(f"hook must be a name, not {hook!r}")
            return cls(
                url=check_url(kwargs.get("url")),
                method=check_method(kwargs.get("method", "POST")),
                headers=check_headers(kwargs.get("headers") or {}),
                body=body,
                hook=hook,
                sending=sending,
                retry=retry,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidPush(f"the push's kwargs do not hold together: {exc}") from exc
        except ConfigurationError as exc:
            raise InvalidPush(str(exc)) from exc


def check_url(url: object) -> str:
    """`url` if it is an absolute http(s) URL with a host and no credentials in it."""
    if not isinstance(url, str) or not url:
        raise InvalidPush(f"a push needs a URL, not {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidPush(f"not a valid URL: {url!r} ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidPush(f"a push URL must be absolute http:// or https://, not {url!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidPush(
            "a push URL must not carry credentials (they would travel in the message and "
            "its dead letters): put them in the hook's secret_headers="
        )
    if any(ch.isspace() for ch in url):
        raise InvalidPush(f"a push URL must not contain whitespace: {url!r}")
    return url


def check_method(method: object) -> str:
    """`method` in upper case, if it is one of `METHODS`."""
    upper = method.upper() if isinstance(method, str) else None
    if upper not in METHODS:
        raise InvalidPush(f"method must be one of {', '.join(sorted(METHODS))}, not {method!r}")
    return upper


def check_headers(headers: object, *, secret: bool = False) -> dict[str, str]:
    """`headers` if every name and value is a string, none is one hare sets itself, and,
    unless they are a hook's `secret_headers` (`secret=True`), none carries credentials."""
    if not isinstance(headers, Mapping):
        raise InvalidPush(f"headers must be a mapping of strings, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise InvalidPush(f"header names and values must be strings: {name!r}")
        if any(ch in name for ch in ":\r\n ") or "\r" in value or "\n" in value:
            raise InvalidPush(f"header {name!r}: no spaces, colons or line breaks")
        if not (name.isascii() and value.isascii()):
            raise InvalidPush(
                f"header {name!r}: names and values must be ASCII, as HTTP/1.1 sends them "
                "(encode other text, e.g. percent-encoding or RFC 8187's UTF-8'' form)"
            )
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            raise InvalidPush(f"header {name!r} is set by hare itself and cannot be overridden")
        if lower in SENSITIVE_HEADERS and not secret:
            raise InvalidPush(
                f"header {name!r} carries credentials, which must not travel in the message "
                "(the broker, its dead letters): give it as secret_headers= of an http_task, "
                "which the worker adds"
            )
        checked[name] = value
    return checked


def encode_body(
    json: Any, data: bytes | str | None, *, has_json: bool, method: str = "POST"
) -> tuple[bytes, str | None]:
    """The request body and its default content type, from exactly one of `json=` (any
    JSON value, `None` included when given) and `data=` (bytes or text); a GET, HEAD,
    DELETE or OPTIONS may have neither (no body)."""
    if has_json and data is not None:
        raise InvalidPush("a push takes json= or data=, not both")
    if has_json:
        try:
            text = json_module.dumps(json, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidPush(f"json= is not JSON-serializable: {exc}") from exc
        return text.encode("utf-8"), "application/json"
    if isinstance(data, str):
        return data.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(data, bytes | bytearray):
        return bytes(data), "application/octet-stream"
    if data is None and method in BODILESS:
        return b"", None
    if data is None:
        raise InvalidPush("a push takes exactly one of json= or data= (data=b'' for no body)")
    raise InvalidPush(f"data= must be bytes or str, not {type(data).__name__}")


def _decode_body(body: object, encoding: object) -> bytes:
    if not isinstance(body, str):
        raise InvalidPush(f"body must be text, not {type(body).__name__}")
    if encoding == "utf-8":
        return body.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise InvalidPush(f"body is not valid base64: {exc}") from exc
    raise InvalidPush(f"body_encoding must be 'utf-8' or 'base64', not {encoding!r}")
