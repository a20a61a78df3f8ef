"""How long a high-priority task waits behind a backlog of low-priority ones.

    python -m benchmarks priority [--backlog 10000] [--high 200] [--every 0.02]
        [--task-ms 2] [--concurrency 8] [--modes bands,none,classic,quorum-native]
        [--amqp URL]

For each mode, in a private vhost: publish `backlog` low-priority tasks (`bench.busy`, which
records its start and then sleeps `task-ms`), start a `hare worker` subprocess with
`concurrency`, wait for its first runs, then publish `high` tasks one at a time, `every`
seconds apart, each carrying its publish time; latency = its start - its publish. Reported:
p50 / p99 / max, and how many of the backlog had started when the last high task was
published (the backlog must still be there for the figures to mean anything).

Modes:
* `bands`: hare's default quorum queue; high tasks `priority=9` travel in `<queue>.high`;
* `none`: the same queue, high tasks sent without a priority (they queue behind the backlog);
* `classic`: a classic queue with `x-max-priority: 10` (`queue_max_priority`), the broker
  orders by the property;
* `quorum-native`: a quorum queue without bands (`priority_bands=False`), the property only:
  on RabbitMQ 4.0-4.2 quorum queues' two levels served 2:1, on 3.x FIFO.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from benchmarks import broker
from benchmarks.bench_app import read_records
from benchmarks.delays import percentile
from hare import Hare

QUEUE = "hare-bench.priority"
#: Settings (as `HARE_*` variables, for the driver and the worker alike) of each mode.
MODES: dict[str, dict[str, str]] = {
    "bands": {},
    "none": {},
    "classic": {"HARE_QUEUE_TYPE": "classic", "HARE_QUEUE_MAX_PRIORITY": "10"},
    "quorum-native": {"HARE_PRIORITY_BANDS": "false"},
}


def _app(url: str, mode: str) -> Hare:
    return Hare("bench", broker=url, environ=MODES[mode], default_queue=QUEUE)


async def _backlog(url: str, mode: str, n: int, millis: float) -> None:
    app = _app(url, mode)
    for start in range(0, n, 200):
        await asyncio.gather(
            *(
                app.asend_task("bench.busy", [0.0, millis], priority=1)
                for _ in range(start, min(n, start + 200))
            )
        )
    await app.aclose()


async def _highs(url: str, mode: str, n: int, every: float, millis: float) -> float:
    """Publish `n` high tasks `every` s apart; the time the last one was published."""
    app = _app(url, mode)
    await app.aconnect()
    priority = None if mode == "none" else 9
    last = 0.0
    for _ in range(n):
        last = time.time()
        await app.asend_task("bench.busy", [last, millis], priority=priority)
        await asyncio.sleep(every)
    await app.aclose()
    return last


def one_mode(url: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    with broker.private_vhost(url, "hare-bench-priority") as vhost:
        asyncio.run(_backlog(vhost, mode, args.backlog, args.task_ms))
        with broker.hare_worker(
            vhost, QUEUE, concurrency=args.concurrency, env=MODES[mode]
        ) as worker:
            if broker.wait_for_records(worker.record_file, 50, 60) < 50:
                raise RuntimeError("the worker did not start")
            last = asyncio.run(_highs(vhost, mode, args.high, args.every, args.task_ms))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                records = read_records(worker.record_file)
                highs = [actual - intended for intended, actual in records if intended > 0]
                if len(highs) >= args.high:
                    break
                time.sleep(0.1)
    lows_by_last = sum(1 for intended, actual in records if intended == 0 and actual <= last)
    waits = [h * 1000 for h in highs]
    return {
        "mode": mode,
        "ran": len(waits),
        "p50_ms": round(percentile(waits, 0.5), 1),
        "p99_ms": round(percentile(waits, 0.99), 1),
        "max_ms": round(max(waits), 1),
        "backlog_started_by_last_publish": lows_by_last,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks priority")
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--high", type=int, default=200)
    parser.add_argument("--every", type=float, default=0.02)
    parser.add_argument("--task-ms", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    print(f"RabbitMQ {broker.rabbitmq_version()}")
    for mode in args.modes.split(","):
        print(json.dumps(one_mode(args.amqp, mode, args)), flush=True)
