"""The worker's log line for each task it receives and runs, in Celery's words.

Celery's worker logs `Task add[<id>] received` on `celery.worker.strategy` and
`Task add[<id>] succeeded in 0.001s: 4` (or `raised unexpected: ValueError(...)`, with the
traceback) on `celery.app.trace`, each record carrying the task's data in `record.data`
(`id`, `name`, `args`, `kwargs`...; `args`/`kwargs` are the message's `argsrepr`/`kwargsrepr`,
which a client sets to hide secrets). hare logs the same lines with the same data: on
`hare.worker.received` and `hare.trace` for a hare app, on Celery's logger names for a
hare_compat app (`Hare.trace_loggers`), so log filters and handlers written for Celery keep
working. A task's `throws` (expected exceptions) are logged at INFO without a traceback.

One line per run, however the task retried (a `Retry`, `autoretry_for`, or hare_compat's
`self.retry` and `autoretry_for`):

* a retry, at INFO, in Celery's format (`retry: Retry in 5s: ValueError(...)`), saying which
  retry it is out of how many and when it runs: `retry: Retry 2/3 in 5s (at <ETA>): ...`;
* a failure for good, at ERROR with the traceback: `raised unexpected: ValueError(...)`, or,
  once the retries are used up, `retries exhausted after 3 retries, raised unexpected: ...`
  (dead-lettered with reason `retries-exhausted`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hare.clock import Clock
from hare.core.message import Message
from hare.core.outcome import Failed, Rejected, RetryRequested, Succeeded
from hare.core.reprs import safe_repr
from hare.core.retry import RetryAt, RetryIn, retry_limit
from hare.errors import Retry
from hare.worker.verdict import Verdict

if TYPE_CHECKING:
    from hare.task import Task

__all__ = ("TraceLog",)

RECEIVED = "Task %(name)s[%(id)s] received"
SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"
FAILURE = "Task %(name)s[%(id)s] %(description)s: %(exc)s"
RETRY = "Task %(name)s[%(id)s] retry: %(exc)s"
REJECTED = "Task %(name)s[%(id)s] %(exc)s"


class TraceLog:
    """Logs what happens to each task on two loggers: `received` and `trace` (its run).
    `clock` tells when a retry runs."""

    def __init__(self, names: tuple[str, str], clock: Clock) -> None:
        self.received_logger = logging.getLogger(names[0])
        self.trace_logger = logging.getLogger(names[1])
        self._clock = clock

    def received(self, message: Message) -> None:
        """`Task <name>[<id>] received`, at INFO."""
        if self.received_logger.isEnabledFor(logging.INFO):
            data = _context(message)
            data["eta"] = message.eta
            self.received_logger.info(RECEIVED, data, extra={"data": data})

    def ran(self, message: Message, verdict: Verdict, runtime: float, task: Task[Any, Any]) -> None:
        """The line for how a run ended: succeeded, retry, raised or rejected."""
        log = self.trace_logger
        outcome, decision = verdict.outcome, verdict.decision
        if isinstance(outcome, Succeeded):
            if log.isEnabledFor(logging.INFO):
                data = _context(message)
                data["runtime"] = runtime
                data["return_value"] = safe_repr(outcome.value)
                log.info(SUCCESS, data, extra={"data": data})
        elif isinstance(outcome, Failed | RetryRequested):
            limit = retry_limit(outcome, task.options.retry)
            if isinstance(decision, RetryIn | RetryAt):
                if log.isEnabledFor(logging.INFO):
                    self._retry(message, outcome, decision, limit)
            else:
                self._failed(message, outcome, verdict.retries_exhausted, task.throws)
        elif isinstance(outcome, Rejected):
            data = _context(message)
            data["exc"] = f"Reject: {outcome.reason}" if outcome.reason else "Reject"
            log.warning(REJECTED, data, extra={"data": data})

    def _retry(
        self,
        message: Message,
        outcome: Failed | RetryRequested,
        decision: RetryIn | RetryAt,
        limit: int | None,
    ) -> None:
        """`retry: Retry 2/3 in 5s (at <ETA>): ValueError(...)`, at INFO."""
        now = self._clock.time()
        if isinstance(decision, RetryIn):
            seconds = decision.seconds
            eta = datetime.fromtimestamp(now + seconds, UTC)
            when = f"in {_seconds(seconds)}s (at {eta.isoformat(timespec='seconds')})"
        else:
            eta = decision.eta
            seconds = eta.timestamp() - now
            when = f"at {eta.isoformat(timespec='seconds')} (in {_seconds(seconds)}s)"
        attempt = message.retries + 1
        exc = outcome.exception
        data = _context(message)
        data.update(retry=attempt, max_retries=limit, countdown=seconds, eta=eta.isoformat())
        of = "" if limit is None else f"/{limit}"
        data["exc"] = f"Retry {attempt}{of} {when}" + (f": {exc!r}" if exc is not None else "")
        self.trace_logger.info(RETRY, data, extra={"data": data})

    def _failed(
        self,
        message: Message,
        outcome: Failed | RetryRequested,
        exhausted: bool,
        throws: tuple[type[BaseException], ...],
    ) -> None:
        """`raised unexpected: ValueError(...)` (ERROR, with the traceback), `raised expected`
        for the task's `throws` (INFO, no traceback); `retries exhausted after 3 retries,
        raised unexpected: ...` when it ends the task's retries."""
        exc = outcome.exception
        if exc is None:  # a `Retry` past max_retries, of no exception: it fails with the Retry
            assert isinstance(outcome, RetryRequested)
            exc = Retry(outcome.countdown, eta=outcome.eta)
        expected = bool(throws) and isinstance(exc, throws)
        description = "raised expected" if expected else "raised unexpected"
        if exhausted:
            made = message.retries
            retries = "retry" if made == 1 else "retries"
            description = f"retries exhausted after {made} {retries}, {description}"
        data = _context(message)
        data.update(exc=repr(exc), description=description, internal=False)
        data.update(traceback=outcome.traceback, retries=message.retries)
        if expected:
            self.trace_logger.info(FAILURE, data, extra={"data": data})
        else:
            exc_info = (type(exc), exc, exc.__traceback__)
            self.trace_logger.error(FAILURE, data, exc_info=exc_info, extra={"data": data})


def _seconds(seconds: float) -> str:
    """Seconds to a tenth, without a trailing `.0`: `5`, `2.5`."""
    return f"{seconds:.1f}".removesuffix(".0")


def _context(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "name": message.task,
        "args": safe_repr(message.args) if message.argsrepr is None else message.argsrepr,
        "kwargs": safe_repr(message.kwargs) if message.kwargsrepr is None else message.kwargsrepr,
    }
