"""What `hare worker` takes from the Celery app when its command line does not say.

A mixin of `hare_compat.app.base.Celery`, kept apart because it is one concept: the worker's
options (`select_queues`, `worker_options`) and how `worker_concurrency` reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hare.errors import ConfigurationError
from hare_compat.app.routes import declared_queues

if TYPE_CHECKING:
    from hare_compat.app.conf import Settings

__all__ = ("WorkerOptions", "worker_concurrency")


class WorkerOptions:
    """`select_queues` and `worker_options` of a Celery app."""

    _selected_queues: list[str] | None

    if TYPE_CHECKING:

        @property
        def conf(self) -> Settings: ...

    def select_queues(self, queues: Sequence[str] | None = None) -> None:
        """Consume only `queues` (names among `task_queues`) in `hare worker`."""
        self._selected_queues = None if queues is None else list(queues)

    def worker_options(self) -> dict[str, Any]:
        """Settings `hare worker` uses when its command line does not say: `concurrency`
        (`worker_concurrency`, if set), `queues` (`select_queues`, else `task_queues`,
        else the default queue) and `retry_on_startup` (`broker_connection_retry_on_startup`
        set to False)."""
        conf = self.conf
        queues = list(declared_queues(conf.task_queues)) or [conf.task_default_queue]
        if self._selected_queues is not None:
            unknown = sorted(set(self._selected_queues) - set(queues))
            if unknown and not conf.task_create_missing_queues:
                raise ConfigurationError(f"select_queues: {unknown} are not in task_queues")
            queues = list(self._selected_queues)
        options: dict[str, Any] = {"queues": queues}
        if conf.broker_connection_retry_on_startup is False:
            options["retry_on_startup"] = False  # else hare waits for the broker, as Celery
        concurrency = worker_concurrency(conf.worker_concurrency)
        if concurrency is not None:
            options["concurrency"] = concurrency
        return options


def worker_concurrency(value: Any) -> int | None:
    """`worker_concurrency` as `hare worker -c` takes it: a positive number (or its text);
    `"auto"` is the CPUs this process may use (what Celery 5.7 gives a pool other than
    prefork); None or 0 leaves hare worker's default."""
    if value is None or value == 0:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return (
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 2)
            )
        if text.isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigurationError(
        f"setting worker_concurrency={value!r}: give a positive number or 'auto'"
    )
