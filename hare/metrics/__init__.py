"""Prometheus metrics of a worker: what it ran, how long, how late, what it holds.

`hare worker --health-port P` serves them at `/metrics` beside the probes when
prometheus-client is installed (`pip install 'hare-queue[metrics]'`); without it `/metrics`
answers 501 naming the extra, and the probes work as before. Nothing here is imported, and no
hook is registered, unless metrics are on: a worker without them pays nothing.

* `families`: the metric families (names, labels, units, buckets), made in a registry;
* `collector`: `MetricsMiddleware`, which counts through the app's middleware
  (`on_dead_letter`), Celery's signals (`task_received`, `task_revoked`), the worker's run
  observer (`hare.worker.observing`: a run's start and verdict, seen on the worker's loop
  whatever the pool) and samples what the worker holds;
* `transport`: `MeasuredTransport`, a transport that times publish confirms and counts
  reconnects;
* `exposition`: the text format for one process, or aggregated over `--processes N`
  (prometheus-client's multiprocess mode).

Only this package imports prometheus_client (`.importlinter`); this module does not, so
`available()` can be asked without it.
"""

from __future__ import annotations

import importlib.util

__all__ = ("EXTRA_HINT", "MULTIPROC_ENV", "available")

#: prometheus-client's directory for the files of a multi-process tree (`--processes N`).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: What `/metrics` says when prometheus-client is missing.
EXTRA_HINT = (
    "metrics need prometheus-client: pip install 'hare-queue[metrics]' "
    "(the probes /livez and /readyz work without it)\n"
)


def available() -> bool:
    """Whether prometheus-client can be imported (without importing it)."""
    return importlib.util.find_spec("prometheus_client") is not None
