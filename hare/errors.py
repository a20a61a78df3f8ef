"""Every error hare raises, under one root, plus the control signals a task may raise.

Failures (exceptions hare raises to you)::

    HareError
    ├── ConfigurationError        a setting, app path or task option is wrong
    │   ├── NotSupportedError     an option hare cannot honour (never silently ignored)
    │   ├── InvalidPriority       a priority outside 0-9 (in `hare.core.priority`)
    │   ├── ResultsDisabled       a result was asked for, but the app stores none
    │   ├── InvalidEventName      an event name that is not topic words (`hare.events.errors`)
    │   ├── InvalidPush           an HTTP push that cannot be sent (in `hare.http.errors`)
    │   └── TracingUnavailable    tracing without opentelemetry (`hare.tracing.errors`)
    ├── TaskNotRegistered         a task name the app does not know (calling side)
    ├── FieldTableError           a header value an AMQP field table cannot carry
    ├── MessageError              a message that cannot be turned into a task call
    │   ├── MalformedMessage      broken body or headers
    │   └── ContentTypeRefused    a content type outside `accept_content`
    ├── DelayTooLong              a delay beyond what the ladder can carry
    ├── InvalidPayload            a payload its handler refuses (in `hare.events.errors`)
    ├── SoftTimeLimitExceeded     raised inside a task at its soft time limit
    ├── TimeLimitExceeded         a task was stopped at its hard time limit
    ├── TaskRevoked               a task was revoked, expired, or terminated
    ├── ChordError                a chord's body cannot run: a task of its header failed
    ├── WorkerLostError           the pool's child running a task died (TaskProcessDied)
    ├── PushFailed                an HTTP push got no 2xx (in `hare.http.errors`)
    ├── DeadLetterQueueNotFound   `hare dlq` was pointed at a queue that does not exist
    ├── ResultTimeout             no result within `get(timeout=)` (also a TimeoutError)
    ├── ResultBackendError        the result backend could not store or read a result
    ├── MalformedResult           a stored result that is not a Celery result body
    ├── RemoteError               a task's exception whose class is not available here
    └── BrokerError               the broker did not do what was asked
        ├── BrokerUnavailable     no connection within the deadline
        │   └── BrokerTLSError    TLS refused (wrong CA, an expired certificate, plain AMQP
        │                         on a TLS port): a configuration error, never waited out
        ├── BrokerNotReady        the broker cannot do it yet (a cluster node catching up)
        ├── TopologyMismatch      a queue/exchange exists with other arguments (406)
        ├── NotFound              a queue/exchange does not exist (404)
        └── PublishError          a publish was not confirmed
            ├── PublishNacked     the broker refused it (basic.nack)
            ├── MessageReturned   unroutable: no queue bound for its routing key
            ├── PublishTimeout    no confirm within the deadline
            └── MessageTooLarge   over `max_message_size`: refused before it is sent

Control signals (exceptions a task raises to tell the worker what to do)::

    TaskSignal
    ├── Retry     run me again later
    ├── Reject    fail for good, no retry: straight to the dead letters
    │   └── DeadLetterError   the same, with a dead-letter reason of the task's own
    └── Ignore    forget this message: ack it, record no result, run nothing after it
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = (
    "BrokerError",
    "BrokerNotReady",
    "BrokerTLSError",
    "BrokerUnavailable",
    "ChordError",
    "ConfigurationError",
    "ContentTypeRefused",
    "DeadLetterError",
    "DeadLetterQueueNotFound",
    "DelayTooLong",
    "FieldTableError",
    "HareError",
    "Ignore",
    "MalformedMessage",
    "MalformedResult",
    "MessageError",
    "MessageReturned",
    "MessageTooLarge",
    "NotFound",
    "NotSupportedError",
    "PublishError",
    "PublishNacked",
    "PublishTimeout",
    "Reject",
    "RemoteError",
    "ResultBackendError",
    "ResultTimeout",
    "ResultsDisabled",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskNotRegistered",
    "TaskProcessDied",
    "TaskRevoked",
    "TaskSignal",
    "TimeLimitExceeded",
    "TopologyMismatch",
    "WorkerLostError",
)


class HareError(Exception):
    """Root of every error hare raises."""


class ConfigurationError(HareError):
    """A setting, app path or task option is wrong."""


class NotSupportedError(ConfigurationError):
    """An option that hare cannot honour was asked for."""

    def __init__(self, option: str, why: str = "") -> None:
        self.option = option
        self.why = why
        super().__init__(f"{option} is not supported" + (f": {why}" if why else ""))


class TaskNotRegistered(HareError):
    """A task name that the app does not know."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no task named {name!r} is registered")


class FieldTableError(HareError, TypeError):
    """A header value (or key) an AMQP field table cannot carry, at `path` (``timelimit[1]``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"header {path or '<table>'}: {reason}")


class MessageError(HareError):
    """A message that cannot be turned into a task call; `reason` is a short machine word."""

    reason = "malformed"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        self.detail = detail
        super().__init__(detail)


class MalformedMessage(MessageError):
    """The body or headers of a message are broken."""


class ContentTypeRefused(MessageError):
    """The message's content type is not in `accept_content`."""

    reason = "content-type-refused"


class DelayTooLong(HareError):
    """A delay is longer than the ladder can carry."""

    def __init__(self, seconds: float, maximum: float) -> None:
        self.seconds = seconds
        self.maximum = maximum
        super().__init__(f"a delay of {seconds:.1f} s exceeds the maximum of {maximum:.1f} s")


class SoftTimeLimitExceeded(HareError):
    """Raised inside a task when it reaches its soft time limit, so it can clean up."""


class TimeLimitExceeded(HareError):
    """A task was stopped at its hard time limit."""


class TaskRevoked(HareError):
    """The task was revoked (`revoke`), expired before it ran, or was terminated while running."""


class ChordError(HareError):
    """A task of a chord's header failed, so its body cannot run; stored for the body and
    what was chained after it (Celery's `ChordError`, as which it is written in results:
    a Celery client raises its own). `__cause__` is the failed task's exception."""


class WorkerLostError(HareError):
    """The pool's child process running the task died before it returned (a segfault,
    `os._exit`, the OOM killer): the message names the signal or exit code, as Celery's."""


#: The name this error had before the prefork pool (tasks with `isolation="process"`).
TaskProcessDied = WorkerLostError


class DeadLetterQueueNotFound(HareError):
    """The dead-letter queue does not exist on the broker."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"no queue {queue!r} on the broker")
        self.queue = queue


# -- results ---------------------------------------------------------------------------------


class ResultTimeout(HareError, TimeoutError):
    """No ready result arrived within the timeout of `get()` / `wait()`."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"no result for task {task_id} within {timeout:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.timeout))


class ResultsDisabled(ConfigurationError):
    """A result was asked for, but the app stores none."""

    def __init__(self, what: str = "results") -> None:
        super().__init__(
            f"{what}: results are off for this app; turn them on with "
            "Hare(..., result_backend='rpc://') (or 'redis://host:6379/0'), "
            "or HARE_RESULT_BACKEND"
        )


class ResultBackendError(HareError):
    """The result backend could not store or read a result (e.g. Redis is unreachable)."""


class MalformedResult(HareError):
    """A stored or replied result that is not a Celery result body."""


class RemoteError(HareError):
    """A task's exception whose class is not available (or not safe) in this process.

    `exc_type` and `exc_module` name the original class, `args` are its arguments as sent.
    """

    def __init__(self, exc_type: str, exc_module: str | None, args: Sequence[Any]) -> None:
        self.exc_type = exc_type
        self.exc_module = exc_module
        super().__init__(*args)

    def __str__(self) -> str:
        name = f"{self.exc_module}.{self.exc_type}" if self.exc_module else self.exc_type
        message = ", ".join(str(arg) for arg in self.args)
        return f"{name}: {message}" if message else name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.exc_type, self.exc_module, self.args))


# -- the broker ------------------------------------------------------------------------------


class BrokerError(HareError):
    """The broker did not do what was asked."""


class BrokerNotReady(BrokerError):
    """The broker cannot do it yet, though the connection is up: an operation got no reply in
    time (a quorum queue electing its leader), or a cluster node has no running replica of a
    stream another node just declared. Worth doing again after a pause: workers retry it with
    backoff instead of stopping."""


class BrokerUnavailable(BrokerError):
    """No connection to the broker could be made within the deadline."""


class BrokerTLSError(BrokerUnavailable):
    """The connection failed on TLS: the broker's certificate is not signed by a CA in
    `cafile`, or has expired, or is not for this host; the broker refused the client's
    certificate; a TLS file cannot be read; or one side speaks TLS and the other does not.

    Retrying cannot mend it, so hare raises it at once: a publish does not wait
    `publish_timeout`, and `hare worker` exits (code 3) instead of waiting for the broker at
    start. A worker that was already consuming keeps reconnecting, logging it: the broker's
    side changed (a certificate renewed wrongly), and it may be put right."""


class TopologyMismatch(BrokerError):
    """A queue or exchange already exists with other arguments (PRECONDITION_FAILED)."""


class NotFound(BrokerError):
    """A queue or exchange does not exist (NOT_FOUND, 404), e.g. on a passive declare."""


class PublishError(BrokerError):
    """A publish was not confirmed by the broker."""

    def __init__(self, detail: str, *, exchange: str = "", routing_key: str = "") -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        super().__init__(detail)


class PublishNacked(PublishError):
    """The broker refused the message (basic.nack), e.g. a full queue with reject-publish."""


class MessageReturned(PublishError):
    """The message was unroutable: no queue is bound for its routing key."""

    def __init__(
        self, detail: str, *, exchange: str = "", routing_key: str = "", reply_code: int = 312
    ) -> None:
        self.reply_code = reply_code
        super().__init__(detail, exchange=exchange, routing_key=routing_key)


class PublishTimeout(PublishError):
    """The broker did not confirm the publish within the deadline."""


class MessageTooLarge(PublishError):
    """The message is larger than the broker takes: refused before it is sent.

    RabbitMQ 4.x refuses messages over `max_message_size` (16 MiB by default; 128 MiB on 3.x)
    by closing the channel. hare checks the body against its `max_message_size` setting
    first, and maps the broker's refusal to this error too.
    """


class TaskSignal(Exception):
    """Base of the exceptions a task raises to steer the worker."""


class Retry(TaskSignal):
    """Ask for another attempt, after `countdown` seconds or at `eta` (to `queue`, expiring
    at `expires`, when given)."""

    def __init__(
        self,
        countdown: float | None = None,
        *,
        eta: datetime | None = None,
        exc: BaseException | None = None,
        max_retries: int | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
    ) -> None:
        if countdown is not None and eta is not None:
            raise ConfigurationError("Retry takes countdown= or eta=, not both")
        self.countdown = countdown
        self.eta = eta
        self.exc = exc
        self.max_retries = max_retries
        #: When the next attempt expires (seconds from when it is sent, or a datetime), and
        #: the queue it goes to: by default the attempt's own.
        self.expires = expires
        self.queue = queue
        #: The next attempt's arguments, when they differ from this one's (Celery's
        #: `self.retry(args=, kwargs=)`); `None` keeps them.
        self.args_override = tuple(args) if args is not None else None
        self.kwargs_override = dict(kwargs) if kwargs is not None else None
        when = f"in {countdown}s" if countdown is not None else (f"at {eta}" if eta else "")
        super().__init__(f"Retry {when}".strip() + (f": {exc!r}" if exc else ""))


class Reject(TaskSignal):
    """Fail for good with no retry; the message goes to the dead letters with `reason`.

    With `requeue=True` the message goes back to its queue instead, as it is: the broker
    delivers it again marked redelivered (`request.delivery_info["redelivered"]`), and each
    requeue counts against the delivery limit, so a task that always requeues ends up in the
    dead letters rather than in a loop.
    """

    dead_reason = "rejected"  # the dead letter's reason; `reason` is its detail

    def __init__(self, reason: str = "rejected by the task", *, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason)


class DeadLetterError(Reject):
    """Fail for good, no retry: dead-lettered with `reason`, a short word of the task's own
    (`http-404`: 1-64 of a-z, 0-9, `.`, `-`), and `detail`, a sentence (clipped to 2,000
    characters). A plain `Reject` is dead-lettered as `rejected`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,63}", reason):
            raise ConfigurationError(f"not a dead-letter reason (a-z, 0-9, '.', '-'): {reason!r}")
        super().__init__(detail or reason)
        self.dead_reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.dead_reason, self.reason))


class Ignore(TaskSignal):
    """Forget this message: the worker acks it, stores no result and runs no callbacks."""
