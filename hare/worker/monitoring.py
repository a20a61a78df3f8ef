"""The worker's Celery events (`hare worker -E`): what it tells Flower, and from where.

`monitor_for` gives a worker whose app has `worker_send_task_events` an `EventMonitor`, and
any other a `Monitor` that does nothing (nothing is observed, built or sent). The events are
sent from the worker process, on its loop, whatever the pool: the monitor observes each run
(`hare.worker.observing`, as the metrics do), so the events of a task run in a prefork child
are sent by its parent from the verdict the child sends back, as Celery's parent process sends
them; and it listens to the worker's `task_received` and `task_revoked` signals (those whose
request names this worker):

=====================  =====================================================================
Celery event           sent when
=====================  =====================================================================
`task-received`        `task_received`: a task will run here (also before an ETA's hold)
`task-started`         its run starts (the pool took it)
`task-succeeded`       it returned: `result` (its repr), `runtime` (seconds)
`task-failed`          it failed for good: `exception` (repr), `traceback`
`task-retried`         it will be retried: `exception`, `traceback`
`task-rejected`        it raised `Reject`: `requeue`
`task-revoked`         `task_revoked`: discarded unrun (`expired` or revoked); or its run was
                       terminated (`terminated`, `signum`)
`worker-online`        the worker is connected (once), then `worker-heartbeat` every 2 s with
                       `active`, `processed`, `loadavg`, `freq`
`worker-offline`       the worker stops, after its drain, before its connection closes
=====================  =====================================================================
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
from typing import TYPE_CHECKING, Any

from hare import signals
from hare.core.outcome import Failed, Rejected, RetryRequested, Succeeded
from hare.core.reprs import safe_repr
from hare.errors import Retry
from hare.monitor.dispatcher import EventDispatcher
from hare.monitor.event import HEARTBEAT_SECONDS, SOFTWARE, received_fields

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.clock import Clock
    from hare.transport.base import Transport
    from hare.worker.observing import RunObserver
    from hare.worker.request import Request
    from hare.worker.running import RunningTasks
    from hare.worker.verdict import Verdict

__all__ = ("EventMonitor", "Monitor", "monitor_for")


class Monitor:
    """A worker's monitor that sends nothing (events are off)."""

    #: What the processor tells of each run (`None`: nothing).
    observer: RunObserver | None = None

    async def close(self) -> None:
        """The worker stops (it has drained)."""


class EventMonitor(Monitor):
    """Sends the Celery events of the worker `dispatcher.hostname` (see the module)."""

    def __init__(self, dispatcher: EventDispatcher, running: RunningTasks, clock: Clock) -> None:
        self.dispatcher = dispatcher
        self.nodename = dispatcher.hostname
        self.observer = self
        self._running = running
        self._clock = clock
        self._heart: asyncio.Task[None] | None = None
        #: The signal of each run terminated in this process, by task id, until it ends.
        self._terminated: dict[str, Any] = {}
        #: Tasks whose run ended here (Celery's `processed`).
        self.processed = 0

    def start(self) -> None:
        """Send `worker-online`, start the heartbeats, listen to the worker's signals."""
        self.dispatcher.start()
        self._worker_event("worker-online")
        self._heart = asyncio.get_running_loop().create_task(self._beat())
        signals.task_received.connect(self._received)
        signals.task_revoked.connect(self._revoked)

    async def close(self) -> None:
        signals.task_received.disconnect(self._received)
        signals.task_revoked.disconnect(self._revoked)
        heart, self._heart = self._heart, None
        if heart is not None:
            heart.cancel()
            await asyncio.gather(heart, return_exceptions=True)
        self._worker_event("worker-offline")
        await self.dispatcher.close()

    async def _beat(self) -> None:
        while True:
            await self._clock.sleep(HEARTBEAT_SECONDS)
            self._worker_event("worker-heartbeat")

    def _worker_event(self, type_: str) -> None:
        self.dispatcher.send(
            type_,
            freq=HEARTBEAT_SECONDS,
            active=len(self._running),
            processed=self.processed,
            loadavg=_load_average(),
            **SOFTWARE,
        )

    # -- signals (this worker's only) --------------------------------------------------------

    def _received(self, sender: Any = None, request: Request | None = None, **_: Any) -> None:
        if request is not None and sender == self.nodename:
            self.dispatcher.send("task-received", **received_fields(request.message))

    def _revoked(
        self,
        request: Request | None = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **_: Any,
    ) -> None:
        if request is None or getattr(request, "hostname", None) != self.nodename:
            return
        task_id = request.message.id
        if terminated:  # announced with the run's end (a prefork child's signal never comes)
            self._terminated[task_id] = signum
            return
        self.dispatcher.send(
            "task-revoked", uuid=task_id, terminated=False, signum=None, expired=expired
        )

    # -- runs (RunObserver) ------------------------------------------------------------------

    def run_started(self, request: Request) -> None:
        self.dispatcher.send("task-started", uuid=request.message.id)

    def run_ended(self, request: Request, verdict: Verdict | None, seconds: float) -> None:
        uuid = request.message.id
        signum = self._terminated.pop(uuid, None)
        if verdict is None:  # cut off by a drain or a lost connection: it runs again
            return
        self.processed += 1
        send = self.dispatcher.send
        outcome = verdict.outcome
        if verdict.terminated:
            assert isinstance(outcome, Failed)
            number = _signum(signum or _signal_in(outcome.exception))
            send("task-revoked", uuid=uuid, terminated=True, signum=number, expired=False)
        elif isinstance(outcome, Succeeded):
            send("task-succeeded", uuid=uuid, result=safe_repr(outcome.value), runtime=seconds)
        elif isinstance(outcome, Failed | RetryRequested):
            exc: BaseException | None = outcome.exception
            if exc is None and isinstance(outcome, RetryRequested) and not verdict.retries:
                exc = Retry(outcome.countdown, eta=outcome.eta)  # a Retry past max_retries
            kind = "task-retried" if verdict.retries else "task-failed"
            send(kind, uuid=uuid, exception=safe_repr(exc), traceback=outcome.traceback or "")
        elif isinstance(outcome, Rejected):
            send("task-rejected", uuid=uuid, requeue=outcome.requeue)


def _signal_in(exc: BaseException) -> str | None:
    """The signal named by a terminated run's `TaskRevoked("terminated (SIGTERM)")`."""
    found = re.fullmatch(r"terminated \((\w+)\)", str(exc))
    return found.group(1) if found else None


def _signum(name: Any) -> Any:
    """The signal's number, as Celery sends it (`SIGTERM` -> 15); else what was given."""
    if not isinstance(name, str):
        return name
    upper = name.upper()
    found = getattr(signal, upper, None) or getattr(signal, "SIG" + upper, None)
    return int(found) if isinstance(found, signal.Signals) else name


def _load_average() -> tuple[float, float, float]:
    """Celery's `load_average()`: the load averages rounded up to hundredths."""
    try:
        loads = os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)
    one, five, fifteen = (math.ceil(load * 100) / 100 for load in loads)
    return (one, five, fifteen)


def monitor_for(app: Hare, transport: Transport, nodename: str, running: RunningTasks) -> Monitor:
    """The monitor of a worker of `app` named `nodename`: started (`worker-online` queued)
    when the app sends task events, else one that does nothing."""
    if not app.settings.worker_send_task_events:
        return Monitor()
    dispatcher = EventDispatcher(transport, nodename, clock=app.clock)
    monitor = EventMonitor(dispatcher, running, app.clock)
    monitor.start()
    return monitor
