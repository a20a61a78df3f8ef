"""The hare app of the pool benchmark, and the worker that runs it:

    python -m benchmarks.pool_app --pool prefork -c 2 -Q QUEUE [--profile FILE]

A `hare.worker.worker.Worker` on one queue, on uvloop as `hare worker` runs (`--loop auto`),
stopped by SIGTERM or SIGINT (it drains, then closes its pool): what
`hare worker benchmarks.pool_app:app -P prefork -c 2` runs, which the benchmark measures, with
a profiler around it.

`--profile FILE` runs the worker process under cProfile and writes its stats to FILE on exit;
prefork children stop profiling when they fork (os.register_at_fork), so the stats are the
parent's alone: the process that holds the connection, decodes, hands calls to the children
and acks.

The queue (`BENCH_QUEUE`) is a classic queue unless `BENCH_QUEUE_TYPE` says otherwise, as
Celery's is; the broker comes from `HARE_BROKER_URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import signal

from benchmarks import pool_tasks
from hare import Hare

QUEUE = os.environ.get("BENCH_QUEUE", "pool.hare")
app = Hare("pool", default_queue=QUEUE, queue_type=os.environ.get("BENCH_QUEUE_TYPE", "classic"))


@app.task(name="bench.cpu")
def cpu(iterations: int) -> None:
    pool_tasks.cpu_task(iterations)


@app.task(name="bench.noop_sync")
def noop_sync() -> None:
    pool_tasks.noop_task()


def main() -> None:
    from hare.worker.loops import loop_factory
    from hare.worker.loops import run as run_on_loop
    from hare.worker.worker import Worker

    parser = argparse.ArgumentParser(prog="python -m benchmarks.pool_app")
    parser.add_argument("--pool", choices=["threads", "prefork", "solo"], default="prefork")
    parser.add_argument("-c", "--concurrency", type=int, default=2)
    parser.add_argument("-Q", "--queue", default=QUEUE)
    parser.add_argument("--profile", help="write the worker process's cProfile stats here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    worker = Worker(
        app,
        queues=[args.queue],
        concurrency=args.concurrency,
        pool=args.pool,
        app_path="benchmarks.pool_app:app",
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        os.register_at_fork(after_in_child=profiler.disable)
        profiler.enable()
    try:
        run_on_loop(serve(), loop_factory("auto")[1])
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
