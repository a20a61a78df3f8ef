"""Watching runs from the worker's loop: a run's start and its verdict, whatever the pool.

A middleware's `before_run` / `after_run` run where the task runs: for a prefork pool, in the
child. Whatever must see every run in the worker's process (the metrics, which a child could
not report) implements `RunObserver` as well; the processor calls each registered middleware
that does, around each run. No such middleware: nothing is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.worker.request import Request
    from hare.worker.verdict import Verdict

__all__ = ("RunObserver", "run_observers")


@runtime_checkable
class RunObserver(Protocol):
    """Told on the worker's loop when a run starts and how it ended."""

    def run_started(self, request: Request) -> None:
        """The task of `request` is about to run (after its admission)."""

    def run_ended(self, request: Request, verdict: Verdict | None, seconds: float) -> None:
        """It ended after `seconds` with `verdict` (`None`: cut off, by a drain or a lost
        connection, before it had one)."""


def run_observers(app: Hare) -> tuple[RunObserver, ...]:
    """The middleware of `app` that observe runs, in registration order."""
    return tuple(item for item in app.middleware if isinstance(item, RunObserver))
