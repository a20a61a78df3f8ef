"""The errors of HTTP push tasks (in the tree of `hare.errors`, kept beside their feature)."""

from __future__ import annotations

from typing import Any

from hare.errors import ConfigurationError, HareError

__all__ = ("InvalidPush", "PushFailed")


class InvalidPush(ConfigurationError):
    """An HTTP push (`app.push`, `app.http_task`) that cannot be sent: a URL that is not
    absolute http(s), an unknown method, both or neither of `json=` and `data=`, a header
    value that is not a string, a header hare sets itself, credentials in the message."""


class PushFailed(HareError):
    """An HTTP push got no 2xx: `reason` is the word it is dead-lettered with once its
    retries are used up (`http-503`, `http-timeout`, `http-connect`...), `status` the HTTP
    status (`None` without a response), `detail` the status line and the start of the body,
    or the error."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.status = status
        super().__init__(f"{reason}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail, self.status))
