"""`hare worker`'s pool: `-P/--pool`, what `-c` counts in it, and the prefork children's limits.

The pool is how sync tasks run, under Celery's names: `prefork` (in child processes, `-c` of
them; Celery's `processes` is the same pool), `threads` (in threads of the worker process,
hare's model) or `solo` (one task at a time in the worker process). Async tasks always run on
the worker's event loop. Each option comes from the command line, else from what the app
proposes (`hare.cli.common.worker_defaults`: a Celery app's `worker_pool`,
`worker_concurrency`, `worker_max_tasks_per_child`...), else from `Worker`'s defaults: the
threads pool, and a concurrency of a child per CPU for prefork, 16 for threads, 1 for solo.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from hare.cli.common import UsageError, whole_number
from hare.worker.prefork.config import START_METHODS, PoolConfig

__all__ = ("add_pool_options", "check_pool", "describe_pool", "pool_options")

#: What `-P` takes (in any case) -> hare's pool.
POOL_NAMES = {"prefork": "prefork", "processes": "prefork", "threads": "threads", "solo": "solo"}

_GREEN = (
    "-P {pool}: hare does not monkey-patch; async def tasks already run concurrently on the "
    "worker's event loop and sync ones in threads (-P threads) or child processes "
    "(-P prefork); drop -P {pool}"
)
#: The options that come from the command line, else the app; 0 on the command line means
#: "no limit", whatever the app says.
_LIMITS = ("pool_start_method", "max_tasks_per_child", "max_memory_per_child")


def add_pool_options(parser: argparse.ArgumentParser) -> None:
    """`-P/--pool` and the prefork children's options, in `hare worker --help`'s own group."""
    group = parser.add_argument_group(
        "pool",
        "How sync tasks run (async def tasks always run on the worker's event loop).",
    )
    add = group.add_argument
    add(
        "-P",
        "--pool",
        metavar="POOL",
        help="prefork (child processes, -c of them; Celery's 'processes' too), threads (in the "
        "worker process) or solo (one task at a time); default: the app's (a Celery app's "
        "worker_pool, prefork unless set), else threads",
    )
    add(
        "--pool-start-method",
        type=str.lower,
        choices=START_METHODS,
        help="how prefork children start: fork (the default) copies the worker; spawn and "
        "forkserver start fresh interpreters that import the app",
    )
    add(
        "--max-tasks-per-child",
        type=whole_number(0),
        metavar="N",
        help="replace a prefork child after it ran N tasks (0: never, the default)",
    )
    add(
        "--max-memory-per-child",
        type=whole_number(0),
        metavar="KIB",
        help="replace a prefork child after a task that left it above KIB kilobytes resident "
        "(Celery's unit; 0: never, the default)",
    )


def check_pool(args: argparse.Namespace) -> None:
    """Turn `-P`'s name into hare's pool (`processes` is prefork); `UsageError` for a pool
    hare has not, or for `-P solo` with another `-c`."""
    if args.pool is None:
        return
    name = args.pool.strip().lower()
    if name in ("eventlet", "gevent"):
        raise UsageError(_GREEN.format(pool=name))
    if name not in POOL_NAMES:
        raise UsageError(
            f"-P {name}: unknown pool; hare has prefork (Celery's processes), threads and solo"
        )
    args.pool = POOL_NAMES[name]
    if args.pool == "solo" and args.concurrency not in (None, 1):
        raise UsageError(f"-P solo runs one task at a time, -c {args.concurrency} more")


def pool_options(args: argparse.Namespace, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`Worker`'s pool keywords: each the command line's, else the app's proposal; those
    neither gives are left out (or None), for `Worker`'s defaults."""
    pool = args.pool or defaults.get("pool") or "threads"
    concurrency = args.concurrency
    if concurrency is None and pool != "solo":  # an app's worker_concurrency sizes a pool
        concurrency = defaults.get("concurrency")
    options: dict[str, Any] = {"pool": pool, "concurrency": concurrency}
    for name in _LIMITS:
        value = getattr(args, name)
        if value is None:
            value = defaults.get(name)
        if value:
            options[name] = value
    return options


def describe_pool(config: PoolConfig, concurrency: int) -> str:
    """The pool in the start-up line: `prefork, 8 child processes (fork), ...`."""
    if config.kind == "solo":
        return "solo, one task at a time"
    if config.kind == "threads":
        return f"threads, {concurrency} tasks at once"
    text = f"prefork, {concurrency} child process{'es' if concurrency != 1 else ''}"
    text += f" ({config.start_method})"
    if config.max_tasks_per_child:
        text += f", each replaced after {config.max_tasks_per_child} tasks"
    if config.max_memory_per_child:
        text += f", replaced above {config.max_memory_per_child} KiB"
    return text
