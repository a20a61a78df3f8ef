"""aiormq's and pamqp's exceptions as hare's errors: the one place they are mapped.

Part of the AMQP transport (`hare.transport.amqp`, the only package that imports aiormq).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, cast
from urllib.parse import unquote, urlsplit

import aiormq
from aiormq import exceptions as aiormq_errors
from aiormq.channel import EXCEPTION_MAPPING
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from pamqp import commands as spec

from hare import errors
from hare.core.envelope import Envelope

__all__ = (
    "AIORMQ_ERRORS",
    "Operation",
    "broker_error",
    "cancelled_here",
    "connect_failure",
    "quiet_aiormq_connection_logs",
    "route",
)

Operation = Literal["declare", "publish", "consume", "settle", "get", "queue"]

#: What aiormq raises, plus the stream errors it passes on when the socket dies. TimeoutError
#: (our deadlines and aiormq's) is an OSError too; `broker_error` tests for it first.
AIORMQ_ERRORS: Final = (AMQPError, ChannelInvalidStateError, OSError, EOFError)

#: aiormq turns a broker's channel.close into one class per reply code and drops the code.
_REPLY_CODE_OF: Final[Mapping[type[BaseException], int]] = MappingProxyType(
    {cls: code for code, cls in EXCEPTION_MAPPING.items()}
)

#: The hare error for a channel the broker closed, by operation and reply code (403 ACCESS_REFUSED,
#: 404 NOT_FOUND, 405 RESOURCE_LOCKED, 406 PRECONDITION_FAILED). Unlisted pairs become a
#: `PublishError` in a publish (not confirmed), else a `BrokerError`, with the broker's text.
_CHANNEL_CLOSE_ERRORS: Final[Mapping[tuple[Operation, int], type[errors.BrokerError]]] = (
    MappingProxyType(
        {
            ("declare", 406): errors.TopologyMismatch,
            ("declare", 404): errors.NotFound,
            ("queue", 404): errors.NotFound,
        }
    )
)


#: What a cluster node says when it cannot serve a queue yet (a stream declared on another node
#: that has no replica running here): PRECONDITION_FAILED, but not a mismatch.
_NOT_READY: Final = ("does not have a running replica",)

#: RabbitMQ's words for a message over its `max_message_size` (406, closing the channel).
_TOO_LARGE: Final = "larger than configured max size"

#: RabbitMQ 4.x's words when a deprecated feature that its configuration denies is used, e.g.
#: a transient non-exclusive queue (denied by default from 4.3): 541, closing the connection.
_DENIED_FEATURE: Final = "Its use is not permitted per the configuration"


def broker_error(
    exc: BaseException,
    op: Operation,
    what: str,
    envelope: Envelope | None = None,
    *,
    timeout: float,
    connected: bool,
) -> errors.BrokerError:
    """The hare error for an aiormq/pamqp exception: the one place they are mapped."""
    where = route(envelope)
    if isinstance(exc, TimeoutError):
        if op == "publish":
            return errors.BrokerError(f"{what}: no reply within {timeout}s")
        return errors.BrokerNotReady(f"{what}: no reply within {timeout}s")
    if isinstance(exc, aiormq_errors.PublishError):  # basic.return, before the confirm
        frame = cast(spec.Basic.Return, exc.frame)
        detail = f"{what}: returned as unroutable ({frame.reply_code} {frame.reply_text})"
        return errors.MessageReturned(detail, reply_code=frame.reply_code or 312, **where)
    if isinstance(exc, aiormq_errors.DeliveryError):  # basic.nack of our delivery tag
        detail = f"{what}: the broker refused the message (basic.nack)"
        return errors.PublishNacked(detail, **where)
    if isinstance(exc, aiormq_errors.ChannelClosed):
        return _channel_closed(exc, op, what, where)
    if isinstance(exc, ChannelInvalidStateError) and connected:
        detail = f"{what}: its channel is closed ({exc})"
        if op == "publish":  # refused before it was sent: safe to publish again
            return errors.PublishError(detail, **where)
        return errors.BrokerError(detail)
    if _DENIED_FEATURE in str(exc):  # the broker closed the connection over it
        return errors.BrokerError(f"{what}: the broker does not permit it: {exc.args[-1]}")
    return errors.BrokerUnavailable(f"{what}: the broker connection is gone ({exc!r})")


def _channel_closed(
    exc: aiormq_errors.ChannelClosed, op: Operation, what: str, where: dict[str, str]
) -> errors.BrokerError:
    """The hare error for a channel the broker closed, by its reply code and text."""
    code = _REPLY_CODE_OF.get(type(exc))
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    detail = f"{what}: {exc.args[-1] if exc.args else repr(exc)}"
    if any(words in detail for words in _NOT_READY):
        return errors.BrokerNotReady(detail)
    if op == "publish" and _TOO_LARGE in detail:
        return errors.MessageTooLarge(detail, **where)
    error = _CHANNEL_CLOSE_ERRORS.get((op, code or 0))
    if error is not None:
        return error(detail)
    if op == "publish":
        return errors.PublishError(detail, **where)
    return errors.BrokerError(detail)


def route(envelope: Envelope | None) -> dict[str, str]:
    if envelope is None:
        return {"exchange": "", "routing_key": ""}
    return {"exchange": envelope.exchange, "routing_key": envelope.routing_key}


def connect_failure(exc: BaseException, url: str, waited: float, *, tls: str | None = None) -> str:
    """Why connecting to `url` failed, in the broker's terms rather than aiormq's.

    RabbitMQ refuses a login by closing the socket (aiormq: `ProbableAuthenticationError`),
    and a vhost the user may not open by `connection.close` in place of `open-ok` (aiormq:
    `InvalidFrameError` naming `Connection.Close`); a closed port is errno 111. `tls` is the
    TLS cause `tls.explain` found, if any.
    """
    parts = urlsplit(url)
    user = unquote(parts.username or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    where = f"{parts.hostname or 'localhost'}:{port}"
    if tls is not None:
        return f"{where}: {tls}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} within {waited:.1f}s"
    if isinstance(
        exc, aiormq_errors.ProbableAuthenticationError | aiormq_errors.AuthenticationError
    ):
        return f"authentication failed for user {user!r} at {where}"
    if isinstance(exc, aiormq_errors.InvalidFrameError) and "Connection.Close" in str(exc):
        return f"vhost {vhost!r} does not exist or user {user!r} may not use it ({where})"
    if isinstance(exc, ConnectionRefusedError) or (exc.args and exc.args[0] == errno.ECONNREFUSED):
        return f"connection refused at {where} (nothing listens there)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"{where}: {exc!r}"


#: What aiormq logs about a connection's life that hare reports itself, in its own words
#: ("lost the broker connection", "reconnected after 9.9s", or the error a caller gets):
#: aiormq's copies come with tracebacks, once per attempt, even in a process that configured
#: no logging (Python's last-resort handler prints them).
_REPORTED_BY_HARE: Final = (
    "error when creating transport",
    "Unexpected connection close from remote",
    "Cancelling cause reader exited abnormally",
    "Server connection %r was stuck",
)


class _ReportedByHare(logging.Filter):
    """Drop aiormq's connection-lifecycle records unless aiormq's logger was set to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger("aiormq").level == logging.DEBUG:  # asked for: keep everything
            return True
        return not (isinstance(record.msg, str) and record.msg.startswith(_REPORTED_BY_HARE))


def cancelled_here(reason: BaseException | None, connection: aiormq.Connection) -> bool:
    """Whether a connection ended because this process cancelled its tasks, not because the
    broker or the network failed. aiormq also cancels its reader when heartbeats stop (and
    warns that the connection was stuck itself): that one is a loss."""
    return isinstance(reason, asyncio.CancelledError) and not connection.is_connection_was_stuck


def quiet_aiormq_connection_logs() -> None:
    """Install the filter on aiormq's loggers (once; they log by module name)."""
    for name in ("aiormq.connection", "aiormq.channel"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ReportedByHare) for f in logger.filters):
            logger.addFilter(_ReportedByHare())
