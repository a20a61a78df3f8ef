"""Watching runs from the worker's loop: a run's start and its verdict, whatever the pool.

A middleware's `before_run` / `after_run` run where the task runs: for a prefork pool, in the
child. Whatever must see every run in the worker's process (the metrics, which a child could
not report) implements `RunObserver` as well; the processor calls each registered middleware
that does, around each run (one that raises is logged, and the run goes on). No such
middleware: nothing is called.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.clock import Clock
    from hare.worker.request import Request
    from hare.worker.verdict import Verdict

__all__ = ("RunObserver", "observed", "run_observers")

logger = logging.getLogger("hare.worker")


@runtime_checkable
class RunObserver(Protocol):
    """Told on the worker's loop when a run starts and how it ended."""

    def run_started(self, request: Request) -> None:
        """The task of `request` is about to run (after its admission)."""

    def run_ended(self, request: Request, verdict: Verdict | None, seconds: float) -> None:
        """It ended after `seconds` with `verdict` (`None`: cut off, by a drain or a lost
        connection, before it had one)."""


def run_observers(app: Hare, worker_own: RunObserver | None = None) -> tuple[RunObserver, ...]:
    """The middleware of `app` that observe runs, in registration order, then `worker_own`
    (one worker's own observer: its Celery events, `hare.worker.monitoring`)."""
    found = tuple(item for item in app.middleware if isinstance(item, RunObserver))
    return found if worker_own is None else (*found, worker_own)


async def observed(
    observers: tuple[RunObserver, ...], request: Request, clock: Clock, run: Awaitable[Verdict]
) -> Verdict:
    """Await `run` (the call of `request`), telling `observers` when it starts and ends."""
    if not observers:
        return await run
    started = clock.monotonic()
    verdict: Verdict | None = None
    try:
        for observer in observers:
            _tell(observer.run_started, request)
        verdict = await run
        return verdict
    finally:
        for observer in observers:
            _tell(observer.run_ended, request, verdict, clock.monotonic() - started)


def _tell(hook: Callable[..., None], *args: Any) -> None:
    """Call an observer's hook; one that raises is logged, and the run goes on unharmed."""
    try:
        hook(*args)
    except Exception:
        logger.exception("run observer %r failed", hook)
