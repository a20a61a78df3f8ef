"""Metrics for `hare worker` (`hare.metrics`): on with `--health-port`, served at `/metrics`.

A worker serving its own probes (`--health-port`, one process) counts in prometheus-client's
default registry and renders it. With `--processes N` the supervisor serves the port: it gives
its children a fresh directory (`HARE_METRICS_DIR`, as `PROMETHEUS_MULTIPROC_DIR` too, set
before they import prometheus-client), each child counts into its files, and `/metrics` adds
them up (prometheus-client's multiprocess mode). Without prometheus-client nothing is counted
and `/metrics` answers 501 naming the extra; the probes are unchanged.

Nothing here imports prometheus-client unless metrics are on and it is installed.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from hare.metrics import EXTRA_HINT, MULTIPROC_ENV, available

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.metrics.collector import MetricsMiddleware
    from hare.metrics.transport import MeasuredTransport
    from hare.worker.worker import Worker

__all__ = (
    "METRICS_DIR_ENV",
    "Page",
    "WorkerMetrics",
    "child_environment",
    "metrics_page",
    "process_exited",
    "worker_metrics",
)

#: Set by a supervisor for its children: the directory their metrics go to.
METRICS_DIR_ENV = "HARE_METRICS_DIR"

#: An HTTP status, a content type and a body.
Page = tuple[int, str, bytes]


class WorkerMetrics:
    """The metrics of one worker process: its middleware and its measured transport."""

    def __init__(self, app: Hare) -> None:
        from hare.metrics.collector import MetricsMiddleware
        from hare.metrics.exposition import default_registry
        from hare.metrics.transport import MeasuredTransport

        self.middleware: MetricsMiddleware = MetricsMiddleware(app, default_registry())
        #: The transport the worker is to use (pass it as `Worker(transport=...)`).
        self.transport: MeasuredTransport = MeasuredTransport(
            app.make_transport(), self.middleware.families
        )

    def install(self, worker: Worker) -> Worker:
        """Count `worker`'s tasks (and read the ladder through its transport); `worker`."""
        self.middleware.install(worker, ladder=self.transport)
        return worker


def worker_metrics(app: Hare, health_port: int | None) -> WorkerMetrics | None:
    """This worker process's metrics when it serves them (`--health-port`) or its supervisor
    does (`HARE_METRICS_DIR`), and prometheus-client is installed; else `None`."""
    if health_port is None and not os.environ.get(METRICS_DIR_ENV):
        return None
    if not available():
        return None
    return WorkerMetrics(app)


def metrics_page(directory: str | None = None) -> Page:
    """`/metrics`: this process's metrics, or those of the children writing to `directory`;
    501 without prometheus-client."""
    if not available():
        return 501, "text/plain; charset=utf-8", EXTRA_HINT.encode()
    from hare.metrics import exposition

    if directory is not None:
        return 200, exposition.CONTENT_TYPE, exposition.render_directory(directory)
    return 200, exposition.CONTENT_TYPE, exposition.render()


def child_environment(directory: str) -> dict[str, str]:
    """A supervisor's metrics directory, made fresh (emptied), as its children's environment;
    empty without prometheus-client."""
    if not available():
        return {}
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    return {METRICS_DIR_ENV: directory, MULTIPROC_ENV: directory}


def process_exited(pid: int, directory: str) -> None:
    """A supervisor's child `pid` exited: its live gauges stop counting."""
    if available():
        from hare.metrics.exposition import mark_process_dead

        mark_process_dead(pid, directory)
