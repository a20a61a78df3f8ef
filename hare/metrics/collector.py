"""`MetricsMiddleware`: a worker's metrics, counted where the worker learns each fact.

* received: Celery's `task_received` (on the worker's loop, once a message is admitted);
* started, succeeded, failed, retried, revoked (terminated), rejected, ignored, the run time
  and the running gauge: the worker's run observer (`hare.worker.observing`), on the worker's
  loop from the run's verdict, so a prefork child's runs are counted in the worker that learns
  their verdict (a child's own middleware calls are not, and need not be, reported);
* lateness: at the start of a task that had an eta or a countdown (its start minus its due
  time). A task without one has no due time on the wire (Celery's protocol carries no
  publish time), so it is not observed;
* revoked and expired messages discarded unrun: `task_revoked(terminated=False)`;
* dead_lettered: the app's `on_dead_letter`, once the dead letter is confirmed;
* the prefetch in use and the ladder backlog: sampled (`sample`, `ladder_backlog`).

Each process counts in its own registry, or in its files in a multi-process tree.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from hare import signals
from hare._version import __version__
from hare.core import ladder
from hare.core.outcome import Failed, Ignored, Rejected, RetryRequested, Succeeded
from hare.errors import HareError, NotFound
from hare.metrics.families import Families
from hare.middleware import DeadLettered, Middleware

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.transport.base import Transport
    from hare.worker.request import Request
    from hare.worker.verdict import Verdict
    from hare.worker.worker import Worker

__all__ = ("MetricsMiddleware",)

logger = logging.getLogger("hare.metrics")

#: The `task` label of a message whose task this worker does not know.
UNKNOWN = "unknown"
#: Seconds between two samples of the prefetch in use.
SAMPLE_EVERY = 1.0
#: Seconds between two readings of the delay ladder (32 passive declares).
LADDER_EVERY = 30.0


class MetricsMiddleware(Middleware):
    """Counts one worker's tasks into `registry` (a fresh one by default); `install` registers
    it on the worker's app."""

    def __init__(
        self,
        app: Hare,
        registry: CollectorRegistry | None = None,
        *,
        ladder_every: float = LADDER_EVERY,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else CollectorRegistry()
        self.families = Families.register(self.registry)
        #: The worker's node name once installed: signals of other workers are not counted.
        self.nodename: str | None = None
        self._ladder: Transport | None = None
        self._ladder_every = ladder_every
        self._sampling: asyncio.Task[None] | None = None
        # Each labelled child once (`labels()` takes a lock and builds a key every time).
        self._tasks = functools.cache(self.families.tasks.labels)
        self._run_seconds = functools.cache(self.families.run_seconds.labels)

    # -- registration ------------------------------------------------------------------------

    def install(self, worker: Worker, *, ladder: Transport | None = None) -> MetricsMiddleware:
        """Count `worker`'s tasks: register on its app (middleware, run observer), connect
        the signals, and say what the worker is (`hare_worker_info`). Before `worker.run()`.
        With `ladder` (the worker's transport) the delay ladder's backlog is read through it
        every `ladder_every` seconds."""
        if self.nodename is None:
            self._ladder = ladder
            self.nodename = worker.nodename
            info = (__version__, worker.nodename, worker.pool.kind, str(worker.concurrency))
            self.families.info.labels(*info).set(1)
            self.app.add_middleware(self)
            signals.task_received.connect(self._received)
            signals.task_revoked.connect(self._revoked)
        return self

    def uninstall(self) -> None:
        """Disconnect the signals (the app keeps the middleware: a worker's runs are still
        counted until it stops)."""
        signals.task_received.disconnect(self._received)
        signals.task_revoked.disconnect(self._revoked)

    # -- what is counted ---------------------------------------------------------------------

    def _task(self, name: str) -> str:
        return name if name in self.app.tasks else UNKNOWN

    def _count(self, task: str, queue: str | None, outcome: str) -> None:
        self._tasks(self._task(task), queue or "", outcome).inc()

    def _ours(self, request: Request | None) -> bool:
        return request is not None and request.hostname == self.nodename

    def _received(self, sender: Any = None, request: Request | None = None, **_: Any) -> None:
        if request is not None and self._ours(request):
            self._count(request.task, request.queue, "received")

    def _revoked(
        self,
        sender: Any = None,
        request: Request | None = None,
        terminated: bool = False,
        expired: bool = False,
        **_: Any,
    ) -> None:
        # A run stopped by revoke(terminate=True) is counted from its verdict (`run_ended`).
        if request is not None and not terminated and self._ours(request):
            self._count(request.task, request.queue, "expired" if expired else "revoked")

    def run_started(self, request: Request) -> None:
        families = self.families
        task, queue = self._task(request.task), request.queue or ""
        self._tasks(task, queue, "started").inc()
        families.running.inc()
        eta = request.message.eta
        if eta is not None:
            late = max(0.0, self.app.clock.time() - eta.timestamp())
            families.lateness_seconds.labels(task, queue).observe(late)

    def run_ended(self, request: Request, verdict: Verdict | None, seconds: float) -> None:
        families = self.families
        families.running.dec()
        if verdict is None:
            return  # cut off: it runs again elsewhere
        task, queue = self._task(request.task), request.queue or ""
        self._run_seconds(task, queue).observe(seconds)
        self._tasks(task, queue, _outcome(verdict)).inc()

    def on_dead_letter(self, dead: DeadLettered) -> None:
        self._count(dead.task, dead.queue, "dead_lettered")

    def on_worker_start(self, worker: Worker) -> None:
        self._sampling = asyncio.get_running_loop().create_task(self._sample(worker))

    def on_worker_stop(self, worker: Worker) -> None:
        if self._sampling is not None:
            self._sampling.cancel()
            self._sampling = None
        self.families.prefetch_in_use.set(0)

    def sample(self, worker: Worker) -> None:
        """Set the gauges the worker is asked for rather than told of."""
        self.families.prefetch_in_use.set(worker.in_flight)

    async def _sample(self, worker: Worker) -> None:
        """Every `SAMPLE_EVERY` seconds the prefetch in use; every `ladder_every` the ladder."""
        clock = self.app.clock
        ladder_at = clock.monotonic()
        while True:
            self.sample(worker)
            if self._ladder is not None and clock.monotonic() >= ladder_at:
                ladder_at = clock.monotonic() + self._ladder_every
                try:
                    self.families.ladder_backlog.set(await ladder_backlog(self._ladder))
                except HareError as exc:  # a lost connection: the next turn tries again
                    logger.debug("could not read the delay ladder's backlog: %s", exc)
            await clock.sleep(SAMPLE_EVERY)


async def ladder_backlog(transport: Transport) -> int:
    """Messages in the delay ladder's levels: a passive declare of each (a level not declared
    yet holds nothing)."""
    total = 0
    for level in range(ladder.LEVELS):
        try:
            total += await transport.message_count(ladder.level_name(level))
        except NotFound:
            if level == 0:
                return 0  # no ladder on this broker yet
    return total


def _outcome(verdict: Verdict) -> str:
    """How a run ended, in `hare_tasks_total`'s words."""
    outcome = verdict.outcome
    if verdict.terminated:
        return "revoked"
    if isinstance(outcome, Succeeded):
        return "succeeded"
    if isinstance(outcome, Failed | RetryRequested):
        return "retried" if verdict.retries else "failed"
    if isinstance(outcome, Rejected):
        return "rejected"
    assert isinstance(outcome, Ignored)
    return "ignored"
