"""A worker as remote control sees it: what `inspect active/registered/stats` answer.

`hare.control_server.ControlServer` asks these questions of the worker it serves; this module
answers them from the worker's processor, in Celery's shapes, so `celery inspect` and Flower
read hare workers as they read Celery ones.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hare.processing import Processor, Running

__all__ = ("WorkerView",)


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

    def registered(self) -> list[str]:
        return sorted(self._processor.app.tasks)

    def stats(self) -> dict[str, Any]:
        return {
            "pool": {"max-concurrency": self._concurrency, "implementation": "hare:asyncio"},
            "total": dict(self._processor.totals),
            "prefetch_count": self._concurrency,
            "broker": {"transport": "amqp", "hostname": self._broker},
        }

    def queues(self) -> list[str]:
        return list(self._queues)

    def terminate(self, ids: Sequence[str], signal: str) -> Collection[str]:
        """Stop the tasks among `ids` that run here; the ids that were stopped."""
        return [task_id for task_id in ids if self._processor.terminate(task_id, signal)]

    def _info(self, running: Running) -> dict[str, Any]:
        message = running.message
        delivery = running.delivery
        return {
            "id": message.id,
            "name": message.task,
            "args": list(message.args),
            "kwargs": dict(message.kwargs),
            "type": message.task,
            "hostname": self._processor.nodename,
            "time_start": running.started,
            "acknowledged": False,
            "delivery_info": {
                "exchange": delivery.exchange,
                "routing_key": delivery.routing_key,
                "priority": delivery.properties.priority,
                "redelivered": delivery.redelivered,
            },
            "worker_pid": os.getpid(),
        }
