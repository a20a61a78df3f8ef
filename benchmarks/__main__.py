"""`python -m benchmarks NAME [options]`: run one benchmark.

run [--quick]   hare next to Celery, Dramatiq, Taskiq and a raw aiormq loop; rewrites
                docs/benchmarks.md's generated section and docs/img/benchmarks.png
core            enqueue and drain of hare against the raw loop, in-process
batch           hare's batch enqueue (aenqueue_many) against raw aiormq with hare's message
delays          delay lateness and what a worker holds (hare only)
periodic        periodic ticks across worker processes
priority        how long a high-priority task waits behind a low-priority backlog
pool            hare's prefork pool next to its threads pool and Celery's prefork, sync tasks
profile         where hare spends its time enqueueing and draining
hotpath         hare's own CPU per task between the transport and the ack (no broker)
latency_split   end-to-end latency split between hare's publisher and its worker
cluster         one quorum queue on the 3-node RabbitMQ 4.0 cluster: enqueue and drain
metrics         what the worker's Prometheus metrics cost per task
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def _commands() -> dict[str, Callable[[list[str]], None]]:
    from benchmarks import (
        batch,
        cluster,
        core,
        delays,
        hotpath,
        latency_split,
        metrics,
        periodic,
        pool,
        priority_latency,
        profile,
        run,
    )

    return {
        "run": run.main,
        "core": core.main,
        "batch": batch.main,
        "delays": delays.main,
        "periodic": periodic.main,
        "priority": priority_latency.main,
        "pool": pool.main,
        "profile": profile.main,
        "cluster": cluster.main,
        "metrics": metrics.main,
        "hotpath": hotpath.main,
        "latency_split": latency_split.main,
    }


def main() -> None:
    commands = _commands()
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        raise SystemExit(2)
    commands[sys.argv[1]](sys.argv[2:])


main()
