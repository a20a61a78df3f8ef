"""One delivery, from its arrival to its settlement: admit it, run it, record it, settle it.

The worker owns consuming, drain and reconnects (`hare.worker.worker`, `hare.worker.inflight`);
the `Processor` owns what happens to one message once it arrived:

* `admit`: may it run now? It is decoded, its task looked up, checked against revocations, its
  expiry and its ETA. What may not run is settled there (dead-lettered, discarded, sent back
  through the delay ladder); what may yields the call to make.
* `run`: the call (`hare.worker.call`) and its verdict, the result and what follows the task,
  then the settlement by that verdict.

Order for a task that ran: the result is stored and the messages that follow it (callbacks,
the next step of a chain, errbacks, a chord's body) are published and confirmed before the
delivery is acked, so a crash in between runs the task again rather than losing what follows
it (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from hare import signals
from hare.app import Hare
from hare.clock import Clock
from hare.context import running
from hare.core import protocol
from hare.core.deadletter import DeadLetter, strip_death_headers
from hare.core.envelope import Delivery
from hare.core.headers import DEATH_HEADERS, ETA_HEADER
from hare.core.message import Message
from hare.core.outcome import Failed
from hare.core.retry import Requeue
from hare.errors import BrokerError, ConfigurationError, MessageError, TaskRevoked
from hare.events.dispatch import address
from hare.http.spec import PUSH_TASK
from hare.results.state import REVOKED, STARTED
from hare.task import Task
from hare.worker.call import TaskCall
from hare.worker.internal_errors import InternalErrors
from hare.worker.observing import RunObserver, observed, run_observers
from hare.worker.recording import Recorder
from hare.worker.request import Request, request_of
from hare.worker.runner import TaskRunner
from hare.worker.running import Running, RunningTasks
from hare.worker.runs import Run, RunKey, Runs, remember, run_key
from hare.worker.settlement import Settlement
from hare.worker.tracelog import TraceLog
from hare.worker.verdict import Verdict

__all__ = ("EARLY_TOLERANCE", "Processor")

logger = logging.getLogger("hare.worker")

#: A message due further ahead than this goes back through the delay ladder instead of
#: waiting in the worker (a producer's clock ahead of ours, a Celery producer that put an ETA
#: straight on the queue). Anything closer is waited out here, so a worker never holds a
#: delayed message for much longer than 350 ms in normal operation (the ladder releases
#: messages `ladder.LEAD_SECONDS` early, plus the sub-unit remainder).
EARLY_TOLERANCE = 1.0

#: Seconds past its due time a parked task stays listed as scheduled (it is on its way).
_PARKED_GRACE = 60.0


class Processor:
    """Processes the deliveries of one worker."""

    def __init__(
        self,
        app: Hare,
        settlement: Settlement,
        runner: TaskRunner,
        recorder: Recorder,
        *,
        clock: Clock,
        rng: random.Random,
        nodename: str,
        accept: frozenset[str],
        self_counted: set[str],
        on_start: Callable[[], None],
        running: RunningTasks,
        is_revoked: Callable[[str], bool],
        is_revoked_by_stamps: Callable[[Mapping[str, Any]], bool],
        monitor: RunObserver | None = None,
    ) -> None:
        self.app = app
        self.settlement = settlement
        self.runner = runner
        self.recorder = recorder
        self.trace_log = TraceLog(app.trace_loggers, clock)
        self.internal_errors = InternalErrors(settlement, clock)
        self.nodename = nodename
        self._clock = clock
        self._rng = rng
        self._accept = accept
        #: Queues whose redeliveries the worker counts itself (classic queues, and queues it
        #: consumes as some other client declared them): see `Settlement.count_redelivery`.
        self.self_counted = self_counted
        #: The runs under way and the recent ones, so that a copy is not run again.
        self.runs = Runs()
        self._on_start = on_start
        self.is_revoked = is_revoked
        self.is_revoked_by_stamps = is_revoked_by_stamps
        #: Tasks running now, by task id.
        self.running = running
        #: Tasks this worker sent back to the delay ladder and not seen since, by task id,
        #: with when they are due (Celery's `inspect scheduled`).
        self.parked: dict[str, tuple[Request, float]] = {}
        self.processed = 0
        #: Runs per task name, for `inspect stats`.
        self.totals: dict[str, int] = {}
        self._observers = run_observers(app, monitor)  # (metrics, Celery's events)

    async def process(self, delivery: Delivery) -> Message | None:
        """Process one delivery; return its message when its task ran.

        A copy of a delivery whose task runs or ran here (`hare.worker.runs`) is not run again: it
        waits for the first run and is settled by its outcome. Whatever goes wrong inside
        hare is settled too (`InternalErrors`): no delivery is left unsettled. Raises only
        `BrokerError` (the connection is gone: the broker delivers it again) and
        cancellation.
        """
        key = run_key(delivery.properties.headers, delivery.body, delivery.queue)
        entry: Run | None = None
        try:
            if key is not None:
                while (earlier := self.runs.get(key)) is not None:
                    if not earlier.is_over:
                        await earlier.wait_over()
                        continue  # ended without running: it is gone from `runs`
                    await self._settle_copy(delivery, key, earlier)
                    return None
                entry = self.runs.begin(key)
            call = await self.admit(delivery)
            if call is None:
                return None
            return await self.run(delivery, call, entry)
        except (BrokerError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self.internal_errors.settle(delivery, key, exc)
            return None
        finally:
            if entry is not None:
                self.runs.end(entry)

    # -- admission ---------------------------------------------------------------------------

    async def admit(self, delivery: Delivery) -> TaskCall | None:
        """The call `delivery` is to make now; `None` once it was settled without running.

        Celery's order: a message it will run is announced (`task_received`) on receipt,
        before its ETA; one due within `EARLY_TOLERANCE` is waited out here.
        """
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
        addressed = address(self.app.events, delivery.queue, message)  # an event's handler
        if isinstance(addressed, DeadLetter):
            await settle.dead_letter(delivery, addressed)
            return None
        message = addressed
        task = self.app.tasks.get(message.task) or self._builtin(message.task)
        if task is None:
            detail = f"no task named {message.task!r} is registered on this worker"
            await settle.dead_letter(delivery, DeadLetter(reason="unknown-task", detail=detail))
            return None
        request = request_of(message, delivery, self.nodename)
        now = self._clock.time()
        if self._revoked(message):
            await self._discard(delivery, task, request, expired=False)
            return None
        if message.expires is not None and message.expires.timestamp() <= now:
            await self._discard(delivery, task, request, expired=True)
            return None
        due = _due(message)
        self.parked.pop(message.id, None)
        if due is not None and due > now and due - now > EARLY_TOLERANCE:
            await settle.redelay(delivery, message, due - now)
            remember(self.parked, message.id, (request, due))
            return None
        self.trace_log.received(message)
        signals.task_received.send(sender=self.nodename, request=request)
        if due is not None and due > now:
            await self._wait_until(due)
            # A revoke that arrived while the message was held (up to 350 ms)
            # still stops it: Celery honours a revoke any time before an ETA task starts.
            if self._revoked(message):
                await self._discard(delivery, task, request, expired=False)
                return None
        return TaskCall(task, request, self._rng)

    def _builtin(self, name: str) -> Task[Any, Any] | None:
        """hare's own task `name`, registered on first use: an app that sends one-off pushes
        (`app.push`) need not have touched `app.http` in the worker's process."""
        if name != PUSH_TASK:
            return None
        return self.app.http.task

    def _revoked(self, message: Message) -> bool:
        return self.is_revoked(message.id) or self.is_revoked_by_stamps(message.headers)

    async def _discard(
        self, delivery: Delivery, task: Task[Any, Any], request: Request, *, expired: bool
    ) -> None:
        """Discard a revoked or expired message unrun, as Celery does: its result REVOKED,
        `task_revoked` sent, the delivery acked."""
        message = request.message
        if expired:
            assert message.expires is not None
            expires = message.expires.isoformat()
            logger.warning("task %s[%s] expired at %s: discarded", task.name, message.id, expires)
        else:
            logger.warning("task %s[%s] revoked: discarded", task.name, message.id)
        reason = TaskRevoked("expired" if expired else "revoked")
        await self.recorder.store(message, REVOKED, reason, request=request)
        signals.task_revoked.send(
            sender=task.sender, request=request, terminated=False, signum=None, expired=expired
        )
        await self.settlement.ack(delivery)

    def scheduled(self) -> list[tuple[Request, float]]:
        """The tasks parked in the delay ladder and not seen since, with when they are due.
        One over a minute past due came back to another worker: it is forgotten."""
        oldest = self._clock.time() - _PARKED_GRACE
        for task_id, (_, due) in list(self.parked.items()):
            if due < oldest:
                del self.parked[task_id]
        return list(self.parked.values())

    async def _wait_until(self, due: float) -> None:
        """Return once the clock reads `due` or later. A timer may fire a little early
        (uvloop's have millisecond resolution: a task ran 0.14 ms before its ETA), and a task
        must never start before it: so sleep again for what is left."""
        while (left := due - self._clock.time()) > 0:
            await self._clock.sleep(left)

    # -- the run -----------------------------------------------------------------------------

    async def run(self, delivery: Delivery, call: TaskCall, entry: Run | None) -> Message:
        """Make an admitted call, record how it ended and settle the delivery by its verdict;
        `entry` is its run in `runs` (`None` for a message without a task id)."""
        task, request = call.task, call.context
        message = request.message
        self._on_start()
        started = self._clock.monotonic()
        verdict = await observed(self._observers, request, self._clock, self._execute(call))
        self.processed += 1
        self.totals[task.name] = self.totals.get(task.name, 0) + 1
        if verdict.terminated:
            await self._settle_terminated(delivery, entry, call, verdict)
            return message
        runtime = self._clock.monotonic() - started
        self.trace_log.ran(message, verdict, runtime, task)
        if entry is not None and not isinstance(verdict.decision, Requeue):
            # (A requeued delivery is meant to run again: its run is not kept.)
            entry.ran_as(task, message, verdict.outcome, verdict.decision)
        with running(request):  # middleware sees whose run the settlement publishes for
            await self._record_and_settle(delivery, entry, task, verdict, request)
        return message

    async def _execute(self, call: TaskCall) -> Verdict:
        """Make the call, listed in `running` meanwhile; its verdict, judged where the task ran
        or, for a call that could not end itself, here on the loop."""
        task, request = call.task, call.context
        message = request.message
        hard, soft = message.timelimit
        options = task.options
        soft = soft if soft is not None else options.soft_time_limit
        hard = hard if hard is not None else options.time_limit
        args, kwargs = message.args, dict(message.kwargs)
        running = Running(call=call, started=self._clock.time())
        self.running[message.id] = running
        try:
            if self._tracks_started(task, message):
                started = {"pid": os.getpid(), "hostname": self.nodename}
                await self.recorder.store(message, STARTED, started, request=request)
            verdict = await self.runner.run_call(call, args, kwargs, soft=soft, hard=hard)
        finally:
            if self.running.get(message.id) is running:
                del self.running[message.id]
        return verdict

    def _tracks_started(self, task: Task[Any, Any], message: Message) -> bool:
        """Whether to store STARTED before the run (Celery: never for an ignored result)."""
        tracks = task.track_started
        if tracks is None:
            tracks = self.app.settings.track_started
        return tracks and not self.recorder.ignores_result(message)

    async def _record_and_settle(
        self,
        delivery: Delivery,
        entry: Run | None,
        task: Task[Any, Any],
        verdict: Verdict,
        request: Request,
    ) -> None:
        """Store the result, send what follows, then settle the delivery by the verdict."""
        settle = self.settlement
        message = request.message
        if entry is None or not entry.recorded:
            try:
                await self.recorder.record(message, verdict, request)
            except ConfigurationError as exc:
                # A workflow hare cannot continue (e.g. a canvas kind it does not support):
                # the task ran, what follows it cannot be sent. Kept where an operator sees it.
                detail = f"the task ran, but what follows it cannot be sent: {exc}"
                dead = DeadLetter(reason="workflow-error", detail=detail)
                await settle.dead_letter(delivery, dead, before_ack=lambda: _settled(entry))
                return
            if entry is not None:
                entry.recorded = True
        await settle.settle(delivery, task, message, verdict, before_ack=lambda: _settled(entry))

    async def _settle_copy(self, delivery: Delivery, key: RunKey, run: Run) -> None:
        """Settle a copy of a delivery (run key `key`) whose task ran here by that run's
        outcome."""
        task_id, _, retries, *_ = key
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
        request = request_of(message, delivery, self.nodename)
        verdict = Verdict(outcome, decision)
        with running(request):
            await self._record_and_settle(delivery, run, task, verdict, request)

    async def _settle_terminated(
        self, delivery: Delivery, entry: Run | None, call: TaskCall, verdict: Verdict
    ) -> None:
        """Celery's way: a task stopped by revoke(terminate=True) is recorded REVOKED and
        its message acked (it is not run again, nor dead-lettered)."""
        outcome = verdict.outcome
        assert isinstance(outcome, Failed)
        message = call.context.message
        if entry is not None:
            entry.ran_as(call.task, message, outcome, verdict.decision)
            entry.recorded = True
        await self.recorder.store(message, REVOKED, outcome.exception, request=call.context)
        _settled(entry)
        await self.settlement.ack(delivery)

    def terminate(self, task_id: str, signal: str = "SIGTERM") -> bool:
        """Stop a running task (revoke with terminate=True); whether it was running here."""
        return self.running.stop(task_id, signal)


def _settled(run: Run | None) -> None:
    if run is not None:
        run.mark_settled()


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
