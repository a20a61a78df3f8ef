"""What `hare worker` takes from the Celery app when its command line does not say.

A mixin of `hare_compat.app.base.Celery`, kept apart because it is one concept: the worker's
options (`select_queues`, `worker_options`) and how `worker_pool`, `worker_concurrency` and the
prefork children's limits read. They are read when a worker starts, not when the app is
configured: a client process never fails on a pool it does not run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hare.errors import ConfigurationError
from hare_compat.app.routes import declared_queues

if TYPE_CHECKING:
    from hare_compat.app.conf import Settings

__all__ = ("WorkerOptions", "worker_concurrency", "worker_pool")

#: Celery's pool names -> hare's pool (Celery's `processes` is its prefork pool).
_POOLS = {"prefork": "prefork", "processes": "prefork", "threads": "threads", "solo": "solo"}
_START_METHODS = ("fork", "spawn", "forkserver")


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
        """Settings `hare worker` uses when its command line does not say: `queues`
        (`select_queues`, else `task_queues`, else the default queue), `retry_on_startup`
        (`broker_connection_retry_on_startup` set to False), `pool` (`worker_pool`: prefork
        unless set, as in Celery), `concurrency` (`worker_concurrency`, if set: else a prefork
        worker runs a child per CPU, as Celery's), and the prefork children's
        `pool_start_method`, `max_tasks_per_child` and `max_memory_per_child` (KiB)."""
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
        options["pool"] = worker_pool(conf.worker_pool)
        options.update(_children(conf))
        return options


def worker_pool(value: Any) -> str:
    """`worker_pool` as hare's pool: Celery's names prefork (its default; `processes` too),
    threads and solo, in any case; eventlet, gevent and custom pools raise
    `ConfigurationError` naming the setting."""
    name = value.strip().lower() if isinstance(value, str) else value
    if name in _POOLS:
        return _POOLS[name]
    if name in ("eventlet", "gevent"):
        raise ConfigurationError(
            f"setting worker_pool={value!r}: hare does not monkey-patch; async def tasks already "
            "run concurrently on the worker's event loop: set worker_pool to 'prefork' or "
            "'threads'"
        )
    raise ConfigurationError(
        f"setting worker_pool={value!r}: hare runs its own pools, 'prefork', 'threads' and "
        "'solo', not a custom pool class: set worker_pool to one of them"
    )


def _children(conf: Settings) -> dict[str, Any]:
    """The prefork children's settings that are set: how they start, when they retire."""
    options: dict[str, Any] = {}
    method = conf.worker_pool_start_method
    if method is not None:
        if method not in _START_METHODS:
            raise ConfigurationError(
                f"setting worker_pool_start_method={method!r}: give one of "
                f"{', '.join(repr(m) for m in _START_METHODS)}"
            )
        options["pool_start_method"] = method
    for name in ("max_tasks_per_child", "max_memory_per_child"):
        value = conf[f"worker_{name}"]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if value is None or value == 0:  # Celery's "no limit"
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(
                f"setting worker_{name}={value!r}: give a positive whole number, or None"
            )
        options[name] = value
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
