"""The metric families of a worker: names, help, labels, units (seconds) and buckets.

Labels stay bounded: `task` is a registered task's name (anything else is `unknown`), `queue`
one of the worker's queues, `outcome` one of `OUTCOMES`; a task id is never a label.

In a multi-process tree (`--processes N`) each process writes its values to files
(`PROMETHEUS_MULTIPROC_DIR`) and the supervisor adds them up: counters and histograms of a
process that exited are kept, gauges count only live processes (`live*` modes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ("OUTCOMES", "PUBLISH_OUTCOMES", "Families")

#: `hare_tasks_total`'s outcomes. received, started, then one of succeeded, failed (for
#: good), retried, revoked (discarded, or terminated while running), expired (discarded),
#: rejected (`Reject` with requeue), ignored (`Ignore`); dead_lettered counts dead letters
#: confirmed, whatever the reason (a failed task's included).
OUTCOMES = (
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "dead_lettered",
    "revoked",
    "expired",
    "rejected",
    "ignored",
)
#: `hare_publish_confirms_total`'s outcomes.
PUBLISH_OUTCOMES = ("ack", "nack", "returned", "timeout", "error")

RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
CONFIRM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True, slots=True)
class Families:
    """A worker's metric families, registered in one registry."""

    tasks: Counter
    run_seconds: Histogram
    lateness_seconds: Histogram
    running: Gauge
    prefetch_in_use: Gauge
    reconnects: Counter
    confirms: Counter
    confirm_seconds: Histogram
    ladder_backlog: Gauge
    info: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> Families:
        """Make every family in `registry` (a fresh one per worker, or per test)."""
        return cls(**_task_families(registry), **_worker_families(registry))


def _task_families(registry: CollectorRegistry) -> dict[str, Any]:
    """The families of the tasks a worker runs."""
    return dict(
        tasks=Counter(
            "hare_tasks",
            "Tasks by outcome: received, started, succeeded, failed, retried, "
            "dead_lettered, revoked, expired, rejected, ignored",
            ("task", "queue", "outcome"),
            registry=registry,
        ),
        run_seconds=Histogram(
            "hare_task_run_seconds",
            "How long a task ran, from its start to its verdict",
            ("task", "queue"),
            buckets=RUN_BUCKETS,
            registry=registry,
        ),
        lateness_seconds=Histogram(
            "hare_task_lateness_seconds",
            "How late a task with an eta or countdown started: its start minus its due time",
            ("task", "queue"),
            buckets=LATENESS_BUCKETS,
            registry=registry,
        ),
        running=Gauge(
            "hare_tasks_running",
            "Tasks running now",
            multiprocess_mode="livesum",
            registry=registry,
        ),
    )


def _worker_families(registry: CollectorRegistry) -> dict[str, Any]:
    """The families of what a worker holds and of its connection."""
    return dict(
        prefetch_in_use=Gauge(
            "hare_prefetch_in_use",
            "Deliveries the worker holds unsettled (running or waiting for a slot)",
            multiprocess_mode="livesum",
            registry=registry,
        ),
        reconnects=Counter(
            "hare_reconnects", "Broker connections opened again after a loss", registry=registry
        ),
        confirms=Counter(
            "hare_publish_confirms",
            "Publishes by the broker's answer: ack, nack, returned, timeout, error",
            ("outcome",),
            registry=registry,
        ),
        confirm_seconds=Histogram(
            "hare_publish_confirm_seconds",
            "From a publish to the broker's confirm (acked publishes)",
            buckets=CONFIRM_BUCKETS,
            registry=registry,
        ),
        ladder_backlog=Gauge(
            "hare_ladder_backlog",
            "Messages waiting in the delay ladder (countdowns, etas, retries)",
            multiprocess_mode="livemax",
            registry=registry,
        ),
        info=Gauge(
            "hare_worker_info",
            "A worker process: hare's version, its node name, pool and concurrency",
            ("version", "nodename", "pool", "concurrency"),
            multiprocess_mode="liveall",
            registry=registry,
        ),
    )
