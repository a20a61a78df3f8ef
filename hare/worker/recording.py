"""Recording what a run ended as: its result (when results are on) and what follows it.

Celery's order: after a success, callbacks and the chain's next step go out before the
result is stored; after a final failure, the result is stored, then errbacks. A result that
cannot be stored is logged, never fatal: the task ran.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hare.app import Hare
from hare.clock import Clock
from hare.core.message import Message
from hare.core.outcome import Ignored, Rejected, RetryRequested, Succeeded
from hare.errors import MessageTooLarge, Reject, Retry
from hare.results.state import FAILURE, RETRY, SUCCESS, TaskResult
from hare.worker.followups import FollowUps, has_follow_ups
from hare.worker.request import Request
from hare.worker.verdict import Verdict

__all__ = ("Recorder",)

logger = logging.getLogger("hare.worker")


class Recorder:
    """Stores the results of one worker's runs and sends what follows them."""

    def __init__(self, app: Hare, follow_ups: FollowUps, clock: Clock) -> None:
        self.app = app
        self.follow_ups = follow_ups
        self._clock = clock

    async def record(self, message: Message, verdict: Verdict, context: Request) -> None:
        """Store the result the verdict means (when results are on), and send what follows.

        Celery's order: after a success, callbacks and the chain's next step go out before
        the result is stored; after a final failure, the result is stored, then errbacks.
        """
        outcome = verdict.outcome
        if isinstance(outcome, Ignored):
            return
        follow = has_follow_ups(message)
        if isinstance(outcome, Succeeded):
            if follow:
                await self.follow_ups.after_success(message, outcome.value)
            if not self.ignores_result(message):
                await self.store(message, SUCCESS, outcome.value, request=context)
            if follow:
                await self.follow_ups.chord_part_succeeded(message, outcome.value)
            return
        if isinstance(outcome, Rejected):
            if not outcome.requeue:  # a requeued task runs again: nothing to record yet
                await self.store(message, FAILURE, _rejection(outcome), request=context)
            return
        exc = outcome.exception
        trace = outcome.traceback
        if isinstance(outcome, RetryRequested) and exc is None:
            exc = _retry_exc(outcome)
        if verdict.retries:
            await self.store(message, RETRY, exc, trace, request=context)
            return
        await self.store(message, FAILURE, exc, trace, request=context)
        if follow and exc is not None:
            await self.follow_ups.after_failure(message, exc, trace, context)

    def ignores_result(self, message: Message) -> bool:
        """Whether a success of `message` is not stored: as the message says, or when it says
        nothing (`None`), as its task says (Celery's rule)."""
        if message.ignore_result is not None:
            return message.ignore_result
        task = self.app.tasks.get(message.task)
        return task is not None and task.ignore_result

    async def store(
        self,
        message: Message,
        state: str,
        value: Any,
        trace: str | None = None,
        *,
        request: Request | None = None,
    ) -> None:
        results = self.app.results
        if results is None:
            return
        result = TaskResult(
            task_id=message.id,
            state=state,
            value=value,
            traceback=trace,
            date_done=datetime.fromtimestamp(self._clock.time(), UTC),
            group_id=message.group,
            parent_id=message.parent_id,
            extra=_extended(message, request) if self.app.settings.result_extended else {},
        )
        try:
            await results.store(result, message)
        except Exception as exc:
            logger.exception(
                "task %s[%s]: could not store its %s result", message.task, message.id, state
            )
            too_large = exc if isinstance(exc, MessageTooLarge) else exc.__cause__
            if isinstance(too_large, MessageTooLarge) and state != FAILURE:
                # The caller would wait in vain: tell it why instead, in a result that fits.
                failure = replace(result, state=FAILURE, value=too_large, traceback=None)
                with contextlib.suppress(Exception):  # logged above already
                    await results.store(failure, message)


def _extended(message: Message, request: Request | None) -> dict[str, Any]:
    """Celery's `result_extended` fields of a result: with the stamps of a stamped message
    (`stamped_headers`, then each stamp by its name), as Celery's backend stores them."""
    extended = {
        "name": message.task,
        "args": list(message.args),
        "kwargs": dict(message.kwargs),
        "worker": request.hostname if request is not None else None,
        "retries": message.retries,
        "queue": request.delivery_info.get("routing_key") if request is not None else None,
    }
    stamps = message.stamps
    if stamps:
        extended["stamped_headers"] = message.stamped_headers
        extended.update(stamps)
    return extended


def _rejection(outcome: Rejected) -> BaseException:
    """What a rejected task's FAILURE records: the exception it raised, when known."""
    return outcome.exception if outcome.exception is not None else Reject(outcome.reason)


def _retry_exc(outcome: RetryRequested) -> Exception:
    return Retry(outcome.countdown, eta=outcome.eta)
