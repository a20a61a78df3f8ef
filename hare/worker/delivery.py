"""Processing one delivery: decode, check, run, record the result, follow up, settle.

The worker owns consuming, drain and reconnects (`hare.worker`); this module owns what happens
to one message once it arrived. Order for a task that ran: the result is stored and the
messages that follow it (callbacks, the next step of a chain, errbacks, a chord's body) are
published and confirmed before the delivery is acked, so a crash in between runs the task
again rather than losing what follows it (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from hare import signals
from hare.app import Hare
from hare.clock import Clock
from hare.core import protocol
from hare.core.deadletter import DeadLetter, strip_death_headers
from hare.core.envelope import Delivery
from hare.core.headers import DEATH_HEADERS, ETA_HEADER, REDELIVERIES_HEADER
from hare.core.message import Message
from hare.core.outcome import Failed, Outcome
from hare.core.retry import Ack, Decision, Requeue, RetryAt, RetryIn, decide
from hare.errors import BrokerError, ConfigurationError, MessageError, TaskRevoked
from hare.results.state import REVOKED, STARTED
from hare.task import Task
from hare.worker.call import Request, TaskCall
from hare.worker.followups import FollowUps
from hare.worker.recording import Recorder
from hare.worker.runner import TaskRunner
from hare.worker.runs import RECENT_RUNS, Run, RunKey, Runs, run_key
from hare.worker.settlement import Settlement
from hare.worker.tracelog import TraceLog

__all__ = ("EARLY_TOLERANCE", "Processor", "Running")

logger = logging.getLogger("hare.worker")

#: A message due further ahead than this goes back through the delay ladder instead of
#: waiting in the worker (a producer's clock ahead of ours, a Celery producer that put an ETA
#: straight on the queue). Anything closer is waited out here, so a worker never holds a
#: delayed message for much longer than 350 ms in normal operation (the ladder releases
#: messages `ladder.LEAD_SECONDS` early, plus the sub-unit remainder).
EARLY_TOLERANCE = 1.0

#: Seconds past its due time a parked task stays listed as scheduled (it is on its way).
_PARKED_GRACE = 60.0

K = TypeVar("K")
V = TypeVar("V")

#: How long to wait before handing back a message that not even a dead letter could take.
_INTERNAL_ERROR_PAUSE = 1.0

# Deciding whether an outcome means "run again" does not depend on the jitter drawn.
_KIND_RNG = random.Random(0)


@dataclass(slots=True, kw_only=True)
class Running:
    """A task that has started, for `inspect active` and for revocation with terminate."""

    call: TaskCall
    #: Wall-clock time it started (Celery's `time_start`).
    started: float


class Processor:
    """Processes the deliveries of one worker."""

    def __init__(
        self,
        app: Hare,
        settlement: Settlement,
        runner: TaskRunner,
        *,
        clock: Clock,
        rng: random.Random,
        nodename: str,
        accept: frozenset[str],
        self_counted: set[str],
        on_start: Callable[[], None],
        follow_ups: FollowUps,
        is_revoked: Callable[[str], bool] = lambda task_id: False,
        is_revoked_by_stamps: Callable[[Mapping[str, Any]], bool] = lambda headers: False,
    ) -> None:
        self.follow_ups = follow_ups
        self.recorder = Recorder(app, follow_ups, clock)
        self.trace_log = TraceLog(app.trace_loggers)
        self.app = app
        self.settlement = settlement
        self.runner = runner
        self.nodename = nodename
        self._clock = clock
        self._rng = rng
        self._accept = accept
        #: Queues whose redeliveries the worker counts itself (classic queues, and queues it
        #: consumes as some other client declared them): see `Settlement.count_redelivery`.
        self.self_counted = self_counted
        #: The runs under way and the recent ones, so that a copy is not run again.
        self.runs = Runs()
        # Run keys whose handling failed inside hare once (then requeued).
        self._failed_once: dict[RunKey, None] = {}
        self._on_start = on_start
        self.is_revoked = is_revoked
        self.is_revoked_by_stamps = is_revoked_by_stamps
        #: Tasks running now, by task id.
        self.running: dict[str, Running] = {}
        #: Tasks this worker sent back to the delay ladder and not seen since, by task id,
        #: with when they are due (Celery's `inspect scheduled`).
        self.parked: dict[str, tuple[Request, float]] = {}
        self.processed = 0
        #: Runs per task name, for `inspect stats`.
        self.totals: dict[str, int] = {}

    async def process(self, delivery: Delivery) -> Message | None:
        """Process one delivery; return its message when its task ran.

        A copy of a delivery whose task runs or ran here (`hare.worker.runs`) is not run again: it
        waits for the first run and is settled by its outcome. Whatever goes wrong inside
        hare is settled too (`_internal_error`): no delivery is left unsettled. Raises only
        `BrokerError` (the connection is gone: the broker delivers it again) and
        cancellation.
        """
        key = run_key(delivery.properties.headers, delivery.body)
        run: Run | None = None
        try:
            if key is not None:
                while (earlier := self.runs.get(key)) is not None:
                    if not earlier.over.is_set():
                        await earlier.over.wait()
                        continue  # ended without running: it is gone from `runs`
                    await self._settle_copy(delivery, earlier)
                    return None
                run = self.runs.begin(key)
            return await self._process(delivery, run)
        except (BrokerError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self._internal_error(delivery, key, exc)
            return None
        finally:
            if run is not None:
                self.runs.end(run)

    async def _process(self, delivery: Delivery, run: Run | None) -> Message | None:
        settle = self.settlement
        if delivery.redelivered and delivery.queue in self.self_counted:
            await settle.count_redelivery(delivery)
            return None
        try:
            message = protocol.decode(delivery.body, delivery.properties, accept=self._accept)
        except MessageError as exc:
            await settle.dead_letter(delivery, DeadLetter(reason=exc.reason, detail=str(exc)))
            return None
        if not DEATH_HEADERS.isdisjoint(message.headers):
            message = replace(message, headers=strip_death_headers(message.headers))
        task = self.app.tasks.get(message.task)
        if task is None:
            detail = f"no task named {message.task!r} is registered on this worker"
            await settle.dead_letter(delivery, DeadLetter(reason="unknown-task", detail=detail))
            return None
        request = self._request(message, delivery)
        now = self._clock.time()
        if self._revoked(message):
            await self._discard_revoked(delivery, task, request)
            return None
        if message.expires is not None and message.expires.timestamp() <= now:
            await self._discard_expired(delivery, task, request)
            return None
        due = _due(message)
        self.parked.pop(message.id, None)
        if due is not None and due > now and due - now > EARLY_TOLERANCE:
            await settle.redelay(delivery, message, due - now)
            self._park(request, due)
            return None
        # Celery's order: a message it will run is announced on receipt, before its ETA.
        self.trace_log.received(message)
        signals.task_received.send(sender=self.nodename, request=request)
        if due is not None and due > now:
            await self._wait_until(due)
            # A revoke that arrived while the message was held (up to 350 ms)
            # still stops it: Celery honours a revoke any time before an ETA task starts.
            if self._revoked(message):
                await self._discard_revoked(delivery, task, request)
                return None
        self._on_start()
        started = self._clock.monotonic()
        outcome, call = await self._execute(task, request)
        self.processed += 1
        self.totals[task.name] = self.totals.get(task.name, 0) + 1
        if call.was_terminated(outcome):
            await self._settle_terminated(delivery, run, task, request, outcome)
            return message
        decision = decide(outcome, task.options.retry, message.retries, self._rng)
        runtime = self._clock.monotonic() - started
        self.trace_log.ran(message, outcome, runtime, task.throws)
        if run is not None and not isinstance(decision, Requeue):
            # (A requeued delivery is meant to run again: its run is not kept.)
            run.ran_as(task, message, outcome, decision)
        await self._record_and_settle(delivery, run, task, message, outcome, decision, request)
        return message

    async def _record_and_settle(
        self,
        delivery: Delivery,
        run: Run | None,
        task: Task[Any, Any],
        message: Message,
        outcome: Outcome,
        decision: Decision,
        request: Request,
    ) -> None:
        """Store the result, send what follows, then settle the delivery by `decision`."""
        settle = self.settlement
        if run is None or not run.recorded:
            try:
                await self.recorder.record(message, outcome, decision, request)
            except ConfigurationError as exc:
                # A workflow hare cannot continue (e.g. a canvas kind it does not support):
                # the task ran, what follows it cannot be sent. Kept where an operator sees it.
                detail = f"the task ran, but what follows it cannot be sent: {exc}"
                dead = DeadLetter(reason="workflow-error", detail=detail)
                await settle.dead_letter(delivery, dead, before_ack=lambda: _settled(run))
                return
            if run is not None:
                run.recorded = True
        await settle.settle(
            delivery,
            task,
            message,
            outcome,
            decision=decision,
            before_ack=lambda: _settled(run),
        )

    async def _settle_copy(self, delivery: Delivery, run: Run) -> None:
        """Settle a copy of a delivery whose task ran here by that run's outcome."""
        task_id, _, retries, *_ = run.key
        if run.settled:
            await self.settlement.ack(delivery)
            logger.warning(
                "task %s[%s] delivered again (retries %d) after it ran here: acked, not run again",
                delivery.properties.headers.get("task", "?"),
                task_id,
                retries,
            )
            return
        task, message, outcome, decision = run.task, run.message, run.outcome, run.decision
        assert task is not None and message is not None
        assert outcome is not None and decision is not None
        logger.warning(
            "task %s[%s] delivered again (retries %d) after it ran here: settled by that "
            "run's outcome, not run again",
            task.name,
            task_id,
            retries,
        )
        request = self._request(message, delivery)
        await self._record_and_settle(delivery, run, task, message, outcome, decision, request)

    async def _internal_error(self, delivery: Delivery, key: RunKey | None, exc: Exception) -> None:
        """Settle a delivery whose handling failed inside hare: requeue it once, then
        dead-letter it with reason `internal-error` and the traceback."""
        headers = delivery.properties.headers
        name, task_id = headers.get("task", "?"), headers.get("id", "?")
        again = key is None or key in self._failed_once
        logger.error(
            "task %s[%s] from %s: internal error in hare while handling it; %s",
            name,
            task_id,
            delivery.queue,
            "dead-lettered" if again else "requeued once",
            exc_info=exc,
        )
        try:
            if not again:
                assert key is not None
                _remember(self._failed_once, key, None)
                await self.settlement.requeue(delivery)
                return
            if key is not None:
                del self._failed_once[key]
            dead = DeadLetter(
                reason="internal-error",
                detail=f"{type(exc).__name__}: {exc}",
                exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
            await self.settlement.dead_letter(delivery, dead)
        except BrokerError:
            raise
        except Exception:
            # Not even a dead letter could be sent: hand the message back, after a pause so
            # that a fault that persists does not become a hot loop.
            logger.exception("task %s[%s]: could not dead-letter it; requeued", name, task_id)
            await self._clock.sleep(_INTERNAL_ERROR_PAUSE)
            await self.settlement.requeue(delivery)

    def _revoked(self, message: Message) -> bool:
        return self.is_revoked(message.id) or self.is_revoked_by_stamps(message.headers)

    def scheduled(self) -> list[tuple[Request, float]]:
        """The tasks parked in the delay ladder and not seen since, with when they are due.
        One over a minute past due came back to another worker: it is forgotten."""
        oldest = self._clock.time() - _PARKED_GRACE
        for task_id, (_, due) in list(self.parked.items()):
            if due < oldest:
                del self.parked[task_id]
        return list(self.parked.values())

    def _park(self, request: Request, due: float) -> None:
        _remember(self.parked, request.message.id, (request, due))

    async def _wait_until(self, due: float) -> None:
        """Return once the clock reads `due` or later. A timer may fire a little early
        (uvloop's have millisecond resolution: a task ran 0.14 ms before its ETA), and a task
        must never start before it: so sleep again for what is left."""
        while (left := due - self._clock.time()) > 0:
            await self._clock.sleep(left)

    async def _settle_terminated(
        self,
        delivery: Delivery,
        run: Run | None,
        task: Task[Any, Any],
        request: Request,
        outcome: Outcome,
    ) -> None:
        """Celery's way: a task stopped by revoke(terminate=True) is recorded REVOKED and
        its message acked (it is not run again, nor dead-lettered)."""
        assert isinstance(outcome, Failed)
        message = request.message
        if run is not None:
            run.ran_as(task, message, outcome, Ack())
            run.recorded = True
        await self.recorder.store(message, REVOKED, outcome.exception, request=request)
        _settled(run)
        await self.settlement.ack(delivery)

    async def _discard_expired(
        self, delivery: Delivery, task: Task[Any, Any], request: Request
    ) -> None:
        message = request.message
        assert message.expires is not None
        expires = message.expires.isoformat()
        logger.warning("task %s[%s] expired at %s: discarded", task.name, message.id, expires)
        await self.recorder.store(message, REVOKED, TaskRevoked("expired"), request=request)
        _send_revoked(task, request, expired=True)
        await self.settlement.ack(delivery)

    async def _discard_revoked(
        self, delivery: Delivery, task: Task[Any, Any], request: Request
    ) -> None:
        message = request.message
        logger.warning("task %s[%s] revoked: discarded", task.name, message.id)
        await self.recorder.store(message, REVOKED, TaskRevoked("revoked"), request=request)
        _send_revoked(task, request, expired=False)
        await self.settlement.ack(delivery)

    def _request(self, message: Message, delivery: Delivery) -> Request:
        return Request(
            message=message,
            queue=delivery.queue,
            hostname=self.nodename,
            delivery_info={
                "exchange": delivery.exchange,
                "routing_key": delivery.routing_key,
                "priority": delivery.properties.priority,
                # A classic queue's redelivery is republished by the worker with a count
                # (`Settlement.count_redelivery`): still a redelivery.
                "redelivered": delivery.redelivered
                or bool(delivery.properties.headers.get(REDELIVERIES_HEADER)),
            },
            properties=_properties(delivery),
        )

    async def _execute(self, task: Task[Any, Any], context: Request) -> tuple[Outcome, TaskCall]:
        message = context.message
        hard, soft = message.timelimit
        options = task.options
        call = TaskCall(task, context, lambda outcome: self._is_retry(task, message, outcome))
        isolated = options.isolation == "process"
        running = Running(call=call, started=self._clock.time())
        self.running[message.id] = running
        try:
            if self._tracks_started(task, message):
                started = {"pid": os.getpid(), "hostname": self.nodename}
                await self.recorder.store(message, STARTED, started, request=context)
            if isolated:
                call.start()
            outcome = await self.runner.run(
                task.fn if isolated else call.wrap(),
                message.args,
                dict(message.kwargs),
                is_async=task.is_async,
                isolated=isolated,
                soft=soft if soft is not None else options.soft_time_limit,
                hard=hard if hard is not None else options.time_limit,
            )
        finally:
            if self.running.get(message.id) is running:
                del self.running[message.id]
        call.finish(outcome)  # a no-op unless the call could not finish itself
        return outcome, call

    def _tracks_started(self, task: Task[Any, Any], message: Message) -> bool:
        """Whether to store STARTED before the run (Celery: never for an ignored result)."""
        tracks = task.track_started
        if tracks is None:
            tracks = self.app.settings.track_started
        return tracks and not self.recorder.ignores_result(message)

    def _is_retry(self, task: Task[Any, Any], message: Message, outcome: Outcome) -> bool:
        decision = decide(outcome, task.options.retry, message.retries, _KIND_RNG)
        return isinstance(decision, RetryIn | RetryAt)

    def terminate(self, task_id: str, signal: str = "SIGTERM") -> bool:
        """Stop a running task (revoke with terminate=True); whether it was running here.

        An async task gets `TaskRevoked` at the `await` it waits in; a sync task gets it in its
        thread when it next runs Python code (not inside a blocking C call); a task in a
        process of its own is not stopped (it finishes, and its result is recorded).
        """
        running = self.running.get(task_id)
        if running is None:
            return False
        return running.call.terminate(signal)


#: The AMQP properties a task sees in `context.properties`, headers apart.
_PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "app_id",
)


def _properties(delivery: Delivery) -> dict[str, Any]:
    properties = delivery.properties
    found = ((name, getattr(properties, name)) for name in _PROPERTIES)
    return {name: value for name, value in found if value is not None}


def _remember(table: dict[K, V], key: K, value: V) -> None:
    """Add to an insertion-ordered table bounded at `RECENT_RUNS`: the oldest go first."""
    table[key] = value
    while len(table) > RECENT_RUNS:
        del table[next(iter(table))]


def _settled(run: Run | None) -> None:
    if run is not None:
        run.mark_settled()


def _send_revoked(task: Task[Any, Any], request: Request, *, expired: bool) -> None:
    """`task_revoked` for a message discarded unrun (revoked, or expired), as Celery sends it."""
    signals.task_revoked.send(
        sender=task.sender, request=request, terminated=False, signum=None, expired=expired
    )


def _due(message: Message) -> float | None:
    """When `message` is due, in epoch seconds; `None` when it is due at once."""
    if message.eta is None:
        return None
    due = message.eta.timestamp()
    # `hare-eta` is exact where the ISO header may be rounded; but a Celery retry copies the
    # request's headers, so a stale one may sit beside a newer `eta`: the `eta` decides.
    millis = message.headers.get(ETA_HEADER)
    if (
        isinstance(millis, int)
        and not isinstance(millis, bool)
        and abs(millis / 1000 - due) < 0.001
    ):
        return millis / 1000
    return due
