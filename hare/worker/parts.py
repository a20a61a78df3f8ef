"""What a running worker is made of, built once when it has connected.

`Parts.build` wires the collaborators of one worker run: the publisher, the settlement, the
task runner, the processor (with its recorder and what follows tasks), the revocations and
remote control, the scheduler when this worker keeps the periodic schedules, and the monitor
(Celery's events, `hare.worker.monitoring`). Each part gets what it needs when it is made;
nothing is patched in afterwards. The tasks running now
(`RunningTasks`) come first: the revocations stop them, the processor fills them, `inspect`
lists them. A reconnect keeps the parts: only the connection under them is made again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hare.app import Hare
from hare.control.revocation_stream import Revocations
from hare.control.server import ControlServer
from hare.core.settings import mask_url
from hare.periodic.scheduler import Scheduler
from hare.publisher import Publisher
from hare.transport.base import Transport
from hare.worker.delivery import Processor
from hare.worker.followups import FollowUps
from hare.worker.monitoring import Monitor, monitor_for
from hare.worker.prefork.config import PoolConfig
from hare.worker.prefork.pool import ProcessPool
from hare.worker.recording import Recorder
from hare.worker.runner import TaskRunner
from hare.worker.running import RunningTasks
from hare.worker.settlement import Settlement
from hare.worker.view import WorkerView

__all__ = ("Parts", "start_pool")


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """The collaborators of one worker run."""

    publisher: Publisher
    settlement: Settlement
    runner: TaskRunner
    processor: Processor
    revocations: Revocations
    control: ControlServer
    #: `None` when this worker does not keep the app's periodic schedules.
    scheduler: Scheduler | None
    #: Celery's events (`worker_send_task_events`); one that sends nothing when off.
    monitor: Monitor

    @classmethod
    def build(
        cls,
        app: Hare,
        transport: Transport,
        *,
        queues: Sequence[str],
        concurrency: int,
        nodename: str,
        accept: frozenset[str],
        rng: random.Random,
        self_counted: set[str],
        on_start: Callable[[], None],
        schedules: bool,
        runner: TaskRunner,
    ) -> Parts:
        """The parts of a worker of `app` on `transport` (connected), named `nodename`.

        `on_start` is called in a delivery's handler task when its task is about to run;
        `self_counted` is the worker's set of queues whose redeliveries it counts itself.
        """
        clock, settings = app.clock, app.settings
        publisher = Publisher(transport, settings, clock, app.middleware)
        settlement = Settlement(publisher, clock, settings.delivery_limit)
        running = RunningTasks()
        monitor = monitor_for(app, transport, nodename, running)
        revocations = Revocations(clock=clock, terminate=running.terminate)
        processor = Processor(
            app,
            settlement,
            runner,
            Recorder(app, FollowUps(app, publisher, clock), clock),
            clock=clock,
            rng=rng,
            nodename=nodename,
            accept=accept,
            self_counted=self_counted,
            on_start=on_start,
            running=running,
            is_revoked=revocations.is_revoked,
            is_revoked_by_stamps=revocations.is_revoked_by_stamps,
            monitor=monitor.observer,
        )
        control = _control_server(app, processor, revocations, queues, concurrency)
        return cls(
            publisher=publisher,
            settlement=settlement,
            runner=runner,
            processor=processor,
            revocations=revocations,
            control=control,
            scheduler=_scheduler(app, publisher, rng) if schedules else None,
            monitor=monitor,
        )


def _control_server(
    app: Hare,
    processor: Processor,
    revocations: Revocations,
    queues: Sequence[str],
    concurrency: int,
) -> ControlServer:
    """What answers remote control (`inspect`, `revoke`...) for the worker of `processor`."""
    broker = mask_url(app.settings.broker_url)
    view = WorkerView(processor, queues=queues, concurrency=concurrency, broker=broker)
    return ControlServer(
        view,
        revocations,
        nodename=processor.nodename,
        clock=app.clock,
        commands=app.control_commands,
        app=app,
    )


def _scheduler(app: Hare, publisher: Publisher, rng: random.Random) -> Scheduler:
    """The scheduler that keeps `app`'s periodic schedules going from this worker."""
    settings = app.settings
    return Scheduler(
        app.main or "app",
        app.periodics,
        publisher,
        clock=app.clock,
        rng=rng,
        generation=settings.generation,
        watchdog=settings.watchdog_interval,
    )


async def start_pool(
    app: Hare, config: PoolConfig, concurrency: int, transport: Transport
) -> ProcessPool | None:
    """The prefork pool of a worker, started: `concurrency` children, when the worker's pool
    is prefork or a sync task asks for a process (`isolation="process"`); else `None`."""
    isolated = any(
        task.options.isolation == "process" and not task.is_async for task in app.tasks.values()
    )
    if config.kind != "prefork" and not isolated:
        return None
    pool = ProcessPool(app, config, concurrency, transport, app.clock)
    await pool.start()
    return pool
