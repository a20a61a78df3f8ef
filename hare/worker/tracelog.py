"""The worker's log line for each task it receives and runs, in Celery's words.

Celery's worker logs `Task add[<id>] received` on `celery.worker.strategy` and
`Task add[<id>] succeeded in 0.001s: 4` (or `raised unexpected: ValueError(...)`, with the
traceback) on `celery.app.trace`, each record carrying the task's data in `record.data`
(`id`, `name`, `args`, `kwargs`...; `args`/`kwargs` are the message's `argsrepr`/`kwargsrepr`,
which a client sets to hide secrets). hare logs the same lines with the same data: on
`hare.worker.received` and `hare.trace` for a hare app, on Celery's logger names for a
hare_compat app (`Hare.trace_loggers`), so log filters and handlers written for Celery keep
working. A task's `throws` (expected exceptions) are logged at INFO without a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from hare.core.message import Message
from hare.core.outcome import Failed, Outcome, Rejected, RetryRequested, Succeeded
from hare.core.protocol import safe_repr

__all__ = ("TraceLog",)

RECEIVED = "Task %(name)s[%(id)s] received"
SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"
FAILURE = "Task %(name)s[%(id)s] %(description)s: %(exc)s"
RETRY = "Task %(name)s[%(id)s] retry: %(exc)s"
REJECTED = "Task %(name)s[%(id)s] %(exc)s"


class TraceLog:
    """Logs what happens to each task on two loggers: `received` and `trace` (its run)."""

    def __init__(self, names: tuple[str, str]) -> None:
        self.received_logger = logging.getLogger(names[0])
        self.trace_logger = logging.getLogger(names[1])

    def received(self, message: Message) -> None:
        """`Task <name>[<id>] received`, at INFO."""
        if self.received_logger.isEnabledFor(logging.INFO):
            data = _context(message)
            data["eta"] = message.eta
            self.received_logger.info(RECEIVED, data, extra={"data": data})

    def ran(
        self,
        message: Message,
        outcome: Outcome,
        runtime: float,
        throws: tuple[type[BaseException], ...] = (),
    ) -> None:
        """The line for how a run ended: succeeded, raised, retry or rejected."""
        log = self.trace_logger
        if isinstance(outcome, Succeeded):
            if log.isEnabledFor(logging.INFO):
                data = _context(message)
                data["runtime"] = runtime
                data["return_value"] = safe_repr(outcome.value)
                log.info(SUCCESS, data, extra={"data": data})
        elif isinstance(outcome, Failed):
            data = _context(message)
            exc = outcome.exception
            expected = bool(throws) and isinstance(exc, throws)
            data["exc"] = repr(exc)
            data["description"] = "raised expected" if expected else "raised unexpected"
            data["traceback"] = outcome.traceback
            data["internal"] = False
            if expected:
                log.info(FAILURE, data, extra={"data": data})
            else:
                exc_info = (type(exc), exc, exc.__traceback__)
                log.error(FAILURE, data, exc_info=exc_info, extra={"data": data})
        elif isinstance(outcome, RetryRequested):
            if log.isEnabledFor(logging.INFO):
                data = _context(message)
                data["exc"] = repr(outcome.exception) if outcome.exception else "Retry"
                log.info(RETRY, data, extra={"data": data})
        elif isinstance(outcome, Rejected):
            data = _context(message)
            data["exc"] = f"Reject: {outcome.reason}" if outcome.reason else "Reject"
            log.warning(REJECTED, data, extra={"data": data})


def _context(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "name": message.task,
        "args": safe_repr(message.args) if message.argsrepr is None else message.argsrepr,
        "kwargs": safe_repr(message.kwargs) if message.kwargsrepr is None else message.kwargsrepr,
    }
