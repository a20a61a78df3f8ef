"""The Celery app of the pool benchmark (`celery -A benchmarks.pool_celery worker -P prefork`):
the same two tasks as `benchmarks.pool_app`, on Celery's default classic queue `BENCH_QUEUE`,
acking on receipt (Celery's default) or, with `CELERY_ACKS_LATE=1`, after the task.

Runs in the project's environment: its dev extra pins Celery 5.7.0, kombu 5.7.0, py-amqp 5.4.2
and billiard 4.3.2, the versions of the peers' venv (`benchmarks/requirements-peers.txt`).
"""

from __future__ import annotations

import os

from celery import Celery

from benchmarks import pool_tasks

QUEUE = os.environ.get("BENCH_QUEUE", "pool.celery")
app = Celery("pool_celery", broker="py" + os.environ.get("BENCH_URL", "amqp://127.0.0.1:5672/"))
app.conf.update(
    task_ignore_result=True,
    result_backend=None,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Celery acks on receipt by default; `CELERY_ACKS_LATE=1` acks after the task, as hare does.
    task_acks_late=os.environ.get("CELERY_ACKS_LATE") == "1",
)


def cpu(iterations: int) -> None:
    pool_tasks.cpu_task(iterations)


def noop_sync() -> None:
    pool_tasks.noop_task()


# Called rather than applied as decorators: Celery is untyped, and mypy is strict here.
app.task(name="bench.cpu")(cpu)
app.task(name="bench.noop_sync")(noop_sync)
