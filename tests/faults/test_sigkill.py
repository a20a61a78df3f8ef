"""kill -9 of a worker mid-run: nothing is lost; only what it held unsettled runs again.

What a killed worker held unsettled is what the broker redelivers: the tasks it was running
(a `start` without an `end` in the ledger) and any that finished in the instant before the
kill, whose ack had not left yet. Nothing else may run twice, and that set can never exceed
the worker's prefetch.
"""

from __future__ import annotations

import signal

import pytest

from hare.core.topology import DEAD_SUFFIX
from tests.apps.fault_app import Ledger
from tests.faults.conftest import (
    Figures,
    Workers,
    jobs,
    producer_app,
    publish_jobs,
    wait_all_ended,
    wait_mid_run,
)

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

TASKS = 1_000
CONCURRENCY = 16


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_sigkill_mid_run_loses_nothing_and_reruns_only_what_was_in_flight(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
    queue_type: str,
) -> None:
    queue = f"kill-{unique}"
    cleanup.append(queue)
    todo = jobs("k", TASKS, 20, 200)
    keys = {key for _, key, _ in todo}
    app = producer_app(fault_url, queue, queue_type=queue_type)
    try:
        victim = workers.start(queue, name="victim", queue_type=queue_type, concurrency=CONCURRENCY)
        survivor = workers.start(
            queue, name="survivor", queue_type=queue_type, concurrency=CONCURRENCY
        )
        await victim.wait_ready()
        await survivor.wait_ready()
        await publish_jobs(app, todo)

        await wait_mid_run(ledger, victim.pid, done=TASKS // 4)
        victim.signal(signal.SIGKILL)
        victim_code = await victim.wait_exit(within=30)
        # The orchestrator starts a new pod in its place.
        replacement = workers.start(
            queue, name="replacement", queue_type=queue_type, concurrency=CONCURRENCY
        )
        await wait_all_ended(ledger, keys)
        survivor_code, replacement_code = await survivor.stop(), await replacement.stop()
        transport = (await app.publisher()).transport
        left = await transport.message_count(queue)
        dead = await transport.message_count(queue + DEAD_SUFFIX)
    finally:
        await app.aclose()

    ledger.refresh()
    victim_runs = ledger.of_pid(victim.pid)
    interrupted = {run.key for run in victim_runs if run.ended is None}
    duplicates = ledger.duplicates()
    ack_lost = set(duplicates) - interrupted
    figures(
        "SIGKILL",
        queue_type=queue_type,
        tasks=TASKS,
        task_ms="20-200",
        concurrency=CONCURRENCY,
        kills=1,
        running_at_kill=len(interrupted),
        duplicates=len(duplicates),
        duplicates_interrupted=len(interrupted & set(duplicates)),
        duplicates_finished_unacked=len(ack_lost),
        lost=len(keys - ledger.ended()),
        killed_exit_code=victim_code,
    )

    assert victim_code == -signal.SIGKILL
    assert interrupted, "the kill found the victim idle: not a mid-run kill"
    # Every task ran to its end at least once.
    assert ledger.ended() == keys
    # What ran twice is what the victim held unsettled: its first run was in the victim, its
    # second elsewhere, and there are no more of them than the victim's prefetch.
    for key, runs in duplicates.items():
        pids = [run.pid for run in runs]
        assert len(runs) == 2 and pids[0] == victim.pid != pids[1], (key, runs)
    assert interrupted <= set(duplicates)
    assert len(duplicates) <= CONCURRENCY, sorted(duplicates)
    assert (left, dead) == (0, 0)
    assert (survivor_code, replacement_code) == (0, 0)
