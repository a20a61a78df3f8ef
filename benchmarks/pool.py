"""`python -m benchmarks pool`: hare's prefork pool next to its threads pool and Celery's prefork
pool, on sync tasks, on the same broker in one run (about 4 minutes here).

* **CPU-bound.** A queue of `--n` tasks that each spin a pure-Python loop for about 20 ms
  (its length calibrated once, in this process, and passed to every task as its argument), then
  drained by hare `threads -c 2`, hare `prefork -c 2` and Celery `prefork -c 2`.
* **No-op.** A queue of `--m` sync no-op tasks drained by hare `prefork -c 2` and Celery
  `prefork -c 2`: the cost of a task to the pool itself.

Celery runs twice in each: acking on receipt (its default) and with `task_acks_late=True`,
which is what hare always does (a task whose worker dies runs again); with a prefetch as small
as the pool, when the ack goes out decides when the next task arrives.

Every drain: the queue is purged and filled by the system's own client (hare `adelay()`,
Celery `delay()`); once the broker holds all of it and the machine is quiet (other processes
under 0.25 cores for 2 s, waiting at most 90 s: `pool_cpu`), the worker starts; each task appends
(start, end) to a record file; wall time is the first start to the last end, and the rate is
tasks over wall time. Each repetition runs every configuration in turn, so ratios are taken
within a repetition. Both systems consume a classic queue with a prefetch of 2 (hare: its
concurrency; Celery: `--prefetch-multiplier 1` × `-c 2`).

hare's worker is `hare worker benchmarks.pool_app:app -P threads|prefork -c 2` (on uvloop, its
default here); `--profile` starts `python -m benchmarks.pool_app` instead, the same `Worker`
under cProfile.
Everything runs in the private vhost `hare-bench-pool`. Rows go to
`benchmarks/results/pool-*.json`; the tables replace the generated part of docs/benchmarks.md's
prefork section unless `--no-docs`; `--report FILE` rebuilds it from a saved run.
`--profile` instead drains `--m` no-ops once with hare prefork under cProfile and prints where
the worker process spends its time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import broker, environment, measure, peers_env, pool_cpu, pool_report, pool_tasks
from benchmarks.measure import ROOT, WorkerSpec

RESULTS = ROOT / "benchmarks" / "results"
VHOST = "hare-bench-pool"
HARE_QUEUE = "pool.hare"
CELERY_QUEUE = "pool.celery"
#: The CPU-bound task's target length.
TASK_SECONDS = 0.020
CONCURRENCY = 2


@dataclass
class Config:
    """One worker configuration: which system, and how its worker starts (`spec(url)`, whose
    key and label name the configuration in rows)."""

    system: str
    spec: Callable[[str], WorkerSpec]


def hare_worker(pool: str) -> Callable[[str], WorkerSpec]:
    def spec(url: str) -> WorkerSpec:
        command = [sys.executable, "-m", "hare", "worker", "benchmarks.pool_app:app", "-P", pool]
        command += ["-c", str(CONCURRENCY), "-Q", HARE_QUEUE, "--loglevel", "warning"]
        env = {"HARE_BROKER_URL": url, "BENCH_QUEUE": HARE_QUEUE, "BENCH_QUEUE_TYPE": "classic"}
        return WorkerSpec(f"hare-{pool}", f"hare {pool} -c {CONCURRENCY}", command, env)

    return spec


def celery_worker(acks_late: bool) -> Callable[[str], WorkerSpec]:
    def spec(url: str) -> WorkerSpec:
        options = ["-P", "prefork", "-c", str(CONCURRENCY), "--prefetch-multiplier", "1"]
        command = measure.celery_worker_command(
            "benchmarks.pool_celery", CELERY_QUEUE, "pool@%h", *options
        )
        env = {"BENCH_URL": url, "BENCH_QUEUE": CELERY_QUEUE}
        label = f"Celery prefork -c {CONCURRENCY}, prefetch multiplier 1"
        if acks_late:
            env["CELERY_ACKS_LATE"] = "1"
            label += ", acks_late"
        key = "celery-prefork-late" if acks_late else "celery-prefork"
        return WorkerSpec(key, label, command, env, grace=10.0)

    return spec


HARE_THREADS = Config("hare", hare_worker("threads"))
HARE_PREFORK = Config("hare", hare_worker("prefork"))
CELERY_PREFORK = Config("celery", celery_worker(acks_late=False))
#: Celery acking after the task, as hare always does: the same delivery guarantee.
CELERY_LATE = Config("celery", celery_worker(acks_late=True))
PHASES = {
    "cpu": [HARE_THREADS, HARE_PREFORK, CELERY_PREFORK, CELERY_LATE],
    "noop": [HARE_PREFORK, CELERY_PREFORK, CELERY_LATE],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pool", description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="CPU-bound tasks per drain")
    parser.add_argument("--m", type=int, default=5000, help="no-op tasks per drain")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: cpu,noop")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/")
    parser.add_argument("--report", type=Path, help="rebuild docs from a saved results file")
    parser.add_argument("--profile", action="store_true", help="profile hare prefork no-ops")
    args = parser.parse_args(argv)
    if args.report:
        write_docs(json.loads(args.report.read_text()))
        return
    if args.profile:
        profile(args.m)
        return
    saved = measure_all(args.n, args.m, args.reps, set(filter(None, args.skip.split(","))))
    if not args.no_docs:
        write_docs(saved)


def measure_all(n: int, m: int, reps: int, skip: set[str]) -> dict[str, Any]:
    started = time.time()
    iterations, seconds = pool_tasks.calibrate(TASK_SECONDS)
    print(f"calibrated: {iterations:,} iterations take {seconds * 1000:.1f} ms", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = str(RESULTS / f"pool-{stamp}.log")
    env = environment.snapshot(None)
    env["celery_packages"] = peers_env.versions(
        sys.executable, ["celery", "kombu", "amqp", "billiard"]
    )
    env["hare_commit"] = _commit()
    rows: list[dict[str, Any]] = []
    with broker.private_vhost(name=VHOST) as url:
        for phase, configs in PHASES.items():
            if phase in skip:
                continue
            count, args = (n, (iterations,)) if phase == "cpu" else (m, ())
            for rep in range(reps):
                for config in configs:
                    row = drain(url, phase, config, count, args, log)
                    rows.append({**row, "rep": rep})
                    print(f"rep {rep} {pool_report.brief(row)}", flush=True)
    # The same loop timed again: how far the machine's speed drifted during the run.
    end_ms = pool_tasks.timed(iterations) * 1000
    saved = {
        "started": started,
        "loop_ms_end": end_ms,
        "seconds": time.time() - started,
        "n": n,
        "m": m,
        "reps": reps,
        "iterations": iterations,
        "calibrated_ms": seconds * 1000,
        "environment": env,
        "loadavg_end": os.getloadavg()[0],
        "rows": rows,
    }
    path = RESULTS / f"pool-{stamp}.json"
    path.write_text(json.dumps(saved, indent=1))
    print(f"the loop took {end_ms:.1f} ms at the end")
    print(f"\n{len(rows)} rows in {saved['seconds']:.0f} s -> {path.relative_to(ROOT)}")
    return saved


def _commit() -> str:
    """The last commit that changed `hare/` (with `+` when the work tree differs from it): a
    branch that adds benchmarks on top keeps naming the hare that was measured."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "log", "-1", "--format=%h", "HEAD", "--", "hare"], capture_output=True, text=True
    )
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "hare"], capture_output=True)
    return head.stdout.strip() + ("+" if dirty.returncode else "")


def drain(
    url: str, phase: str, config: Config, n: int, args: tuple[Any, ...], log: str
) -> dict[str, Any]:
    """Fill the configuration's queue with `n` tasks, then time its worker draining them."""
    spec = config.spec(url)
    queue = HARE_QUEUE if config.system == "hare" else CELERY_QUEUE
    task = "bench.cpu" if phase == "cpu" else "bench.noop_sync"
    asyncio.run(measure.purge(url, [queue]))
    fill(url, config.system, task, n, args)
    asyncio.run(wait_ready(url, queue, n))
    row: dict[str, Any] = {
        "measure": phase,
        "system": config.system,
        "key": spec.key,
        "config": spec.label,
        "queue": "classic",
        "prefetch": CONCURRENCY,
        "n": n,
        **run_worker(spec, n, log),
    }
    measure.emit(row)
    return row


def run_worker(spec: WorkerSpec, n: int, log: str) -> dict[str, Any]:
    """Start the worker on its full queue once the machine is quiet; what it took to run the
    `n` tasks."""
    broker_process = measure.broker_process()
    waited = pool_cpu.wait_quiet(broker_process)
    with measure.worker(spec, log) as running:
        pid, record_file = running.process.pid, running.record_file
        measure.wait_count(record_file, 1, timeout=60)
        before = pool_cpu.read(pid, record_file, broker_process)
        complete = measure.wait_count(record_file, n, timeout=60 + n * 0.1)
        after = pool_cpu.read(pid, record_file, broker_process)
        records = measure.read_records(record_file)
        cpu = running.monitor.cpu_per_task([start for start, _ in records])
        peak = running.peak_rss_mb
    row: dict[str, Any] = {
        "executions": len(records),
        "complete": complete,
        "rss_peak_mb": peak,
        "waited_s": waited,
        **pool_cpu.between(before, after),
    }
    if cpu is not None:
        row.update(cpu_us=cpu[0], broker_cpu_us=cpu[1])
    if records:
        first = min(start for start, _ in records)
        wall = max(end for _, end in records) - first
        row.update(
            value=len(records) / wall if wall > 0 else float("nan"),
            wall_s=wall,
            wall_us=wall / len(records) * 1e6,
            task_ms=statistics.median(end - start for start, end in records) * 1000,
            boot_s=first - running.started,
        )
    return row


def fill(url: str, system: str, task: str, n: int, args: tuple[Any, ...]) -> None:
    """`n` calls of `task` on the system's queue, published by the system's own client."""
    if system == "celery":
        from benchmarks import pool_celery

        pool_celery.app.conf.broker_url = "py" + url
        send = pool_celery.app.tasks[task].delay
        for _ in range(n):
            send(*args)
        pool_celery.app.close()
        return
    from hare import Hare

    app = Hare("pool", broker=url, environ={}, default_queue=HARE_QUEUE, queue_type="classic")
    declared = app.task(name=task)(_stub)

    async def go() -> None:
        await measure.windows(n, lambda i: declared.adelay(*args))
        await app.aclose()

    asyncio.run(go())


def _stub(*args: Any) -> None:
    """Producer-side declaration (the worker runs `benchmarks.pool_app`'s tasks)."""


async def wait_ready(url: str, queue: str, n: int, within: float = 60.0) -> None:
    """Return once `queue` holds `n` ready messages (Celery publishes without confirms)."""
    import aiormq

    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        deadline = time.monotonic() + within
        while True:
            declared = await channel.queue_declare(queue, passive=True)
            if (declared.message_count or 0) >= n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue} holds {declared.message_count} of {n} tasks")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


def profile(m: int, top: int = 30) -> None:
    """One hare prefork drain of `m` no-ops with the worker process under cProfile."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stats_file = RESULTS / time.strftime("pool-profile-%Y%m%d-%H%M%S.prof")
    log = str(stats_file.with_suffix(".log"))
    profiled = Config("hare", lambda url: _with_profile(hare_worker("prefork")(url), stats_file))
    with broker.private_vhost(name=VHOST) as url:
        row = drain(url, "noop", profiled, m, (), log)
    print(pool_report.brief(row))
    for order in ("tottime", "cumulative"):
        print(f"\n## by {order}\n")
        pstats.Stats(str(stats_file)).sort_stats(order).print_stats(top)
    print(f"stats in {stats_file.relative_to(ROOT)}")


def _with_profile(spec: WorkerSpec, stats_file: Path) -> WorkerSpec:
    """`spec`'s worker as `python -m benchmarks.pool_app`, which can run it under cProfile."""
    spec.command = [sys.executable, "-m", "benchmarks.pool_app", "--pool", "prefork"]
    spec.command += ["-c", str(CONCURRENCY), "-Q", HARE_QUEUE, "--profile", str(stats_file)]
    spec.label += ", under cProfile"
    return spec


def write_docs(saved: dict[str, Any]) -> None:
    page = ROOT / "docs" / "benchmarks.md"
    section = pool_report.render(saved)
    print(section)
    page.write_text(pool_report.splice(page.read_text(), section))
    print(f"wrote {page.relative_to(ROOT)}")
