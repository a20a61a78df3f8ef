"""A worker as remote control sees it: what `inspect active/registered/stats` answer.

`hare.control.server.ControlServer` asks these questions of the worker it serves; this module
answers them from the worker's processor, in Celery's shapes, so `celery inspect` and Flower
read hare workers as they read Celery ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hare.context import TaskContext

if TYPE_CHECKING:
    from hare.worker.delivery import Processor
    from hare.worker.running import Running

__all__ = ("DEFAULT_TASK_INFO_ITEMS", "WorkerView")


#: The attributes Celery's `inspect registered` shows by default, when set.
DEFAULT_TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit")


def _described(name: str, task: Any, items: Sequence[str]) -> str:
    """Celery's `_extract_info`: `name [field=value ...]` for the fields that are not None."""
    sender = getattr(task, "sender", task)
    fields = [(item, getattr(sender, item, None)) for item in items]
    info = " ".join(f"{item}={value}" for item, value in fields if value is not None)
    return f"{name} [{info}]" if info else name


class WorkerView:
    """Answers `ControlServer`'s questions for one worker."""

    def __init__(
        self,
        processor: Processor,
        *,
        queues: Sequence[str],
        concurrency: int,
        broker: str,
    ) -> None:
        self._processor = processor
        self._queues = list(queues)
        self._concurrency = concurrency
        self._broker = broker

    def active(self) -> list[dict[str, Any]]:
        return [self._info(running) for running in list(self._processor.running.values())]

    def reserved(self) -> list[dict[str, Any]]:
        return []  # prefetched deliveries are not decoded until a slot takes them

    def scheduled(self) -> list[dict[str, Any]]:
        """Tasks this worker sent back to the delay ladder and not due yet: Celery's
        `scheduled` shape (hare holds none in memory; the broker does)."""
        return [
            {
                "eta": datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
                # Celery's timer priority for an ETA task; hare has no timer.
                "priority": 6,
                "request": self._request_info(request, started=None),
            }
            for request, due in self._processor.scheduled()
        ]

    def registered(
        self, taskinfoitems: Sequence[str] | None = None, builtins: bool = False
    ) -> list[str]:
        """The task names, each followed by its `taskinfoitems` attributes that are set, as
        Celery's `registered` answers: `"name [rate_limit=2/s]"`.

        The attributes are read from the task's `sender` (hare_compat's Celery-style task
        for a compat task; a plain hare task has none of them, so it is listed bare).
        """
        items = [
            item
            for item in (taskinfoitems or DEFAULT_TASK_INFO_ITEMS)
            if isinstance(item, str) and not item.startswith("_")
        ]
        tasks = self._processor.app.tasks
        return sorted(
            _described(name, tasks[name], items)
            for name in tasks
            if builtins or not name.startswith("celery.")  # Celery's built-ins, as Celery
        )

    def stats(self) -> dict[str, Any]:
        pool = self._processor.runner.pool
        return {
            "pool": {
                "max-concurrency": self._concurrency,
                "implementation": "hare:prefork" if pool is not None else "hare:asyncio",
                # The prefork children, else this process (its loop and its threads).
                "processes": pool.pids if pool is not None else [os.getpid()],
            },
            "total": dict(self._processor.totals),
            "prefetch_count": self._concurrency,
            "broker": {"transport": "amqp", "hostname": self._broker},
        }

    def running_headers(self) -> dict[str, Mapping[str, Any]]:
        """The message headers of the tasks running here, by task id."""
        return {
            task_id: running.call.context.message.headers
            for task_id, running in list(self._processor.running.items())
        }

    def query(self, ids: Sequence[str]) -> dict[str, list[Any]]:
        """Celery's `query_task`: `{id: ["active", info]}` for the ids that run here."""
        running = self._processor.running
        return {
            task_id: ["active", self._info(running[task_id])]
            for task_id in ids
            if task_id in running
        }

    def queues(self) -> list[str]:
        return list(self._queues)

    def _info(self, running: Running) -> dict[str, Any]:
        return self._request_info(running.call.context, started=running.started)

    def _request_info(self, request: TaskContext, started: float | None) -> dict[str, Any]:
        """Celery's `Request.info()`: a running task (`started`), or one not started."""
        message = request.message
        return {
            "id": message.id,
            "name": message.task,
            "args": list(message.args),
            "kwargs": dict(message.kwargs),
            "type": message.task,
            "hostname": self._processor.nodename,
            "time_start": started,
            "acknowledged": False,
            "delivery_info": dict(request.delivery_info),
            "worker_pid": os.getpid() if started is not None else None,
        }
