"""How a worker runs its sync tasks: `threads`, `prefork` or `solo`, as Celery names its pools.

* `threads`: in a thread pool of the worker process (hare's default for a native app);
* `prefork`: in long-lived child processes, one task at a time each, `concurrency` of them
  (the default of a Celery app through hare_compat, as in Celery);
* `solo`: one task at a time, in the worker process.

Async tasks always run on the worker's event loop. A task's own `isolation` ("thread" or
"process") overrides the pool for that task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from hare.errors import ConfigurationError

__all__ = ("POOLS", "START_METHODS", "PoolConfig", "default_concurrency")

POOLS = ("threads", "prefork", "solo")
START_METHODS = ("fork", "spawn", "forkserver")

Pool = Literal["threads", "prefork", "solo"]
StartMethod = Literal["fork", "spawn", "forkserver"]

#: The concurrency of a threads pool nobody sized.
THREADS_DEFAULT = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """The pool of one worker; checked when made (`ConfigurationError`)."""

    kind: Pool = "threads"
    #: How prefork children start (Celery 5.7's `worker_pool_start_method`): `fork` copies the
    #: worker process; `spawn` and `forkserver` start fresh interpreters that import the app
    #: from `app_path` ("module:attribute").
    start_method: StartMethod = "fork"
    #: Replace a child after it ran this many tasks (`None`: never).
    max_tasks_per_child: int | None = None
    #: Replace a child after a task that left it above this resident size, in KiB (Celery's
    #: unit); a single task cannot grow a child by more than this (`MemoryError`).
    max_memory_per_child: int | None = None
    app_path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in POOLS:
            raise ConfigurationError(
                f"pool must be one of {', '.join(POOLS)}, not {self.kind!r}"
                + (
                    " (hare does not monkey-patch: async def tasks run concurrently on the "
                    "worker's event loop)"
                    if self.kind in ("eventlet", "gevent")
                    else ""
                )
            )
        if self.start_method not in START_METHODS:
            raise ConfigurationError(
                f"pool start method must be one of {', '.join(START_METHODS)}, "
                f"not {self.start_method!r}"
            )
        for name in ("max_tasks_per_child", "max_memory_per_child"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ConfigurationError(f"{name} must be a positive whole number, not {value!r}")

    @classmethod
    def checked(
        cls,
        kind: str,
        start_method: str,
        max_tasks_per_child: int | None,
        max_memory_per_child: int | None,
        app_path: str | None,
    ) -> PoolConfig:
        """The pool that `Worker`'s arguments describe (plain strings), checked."""
        return cls(
            kind=kind,  # type: ignore[arg-type]  # checked in __post_init__
            start_method=start_method,  # type: ignore[arg-type]
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
            app_path=app_path,
        )

    def concurrency(self, given: int | None) -> int:
        """The concurrency of a worker on this pool: `given`, checked, or the default."""
        concurrency = default_concurrency(self.kind) if given is None else given
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if self.kind == "solo" and concurrency != 1:
            raise ConfigurationError(f"the solo pool runs one task at a time, not {concurrency}")
        return concurrency


def default_concurrency(kind: str) -> int:
    """`concurrency` when nobody gave one: a child per CPU this process may use for prefork
    (as Celery), one for solo, `THREADS_DEFAULT` threads otherwise."""
    if kind == "solo":
        return 1
    if kind == "prefork":
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    return THREADS_DEFAULT
