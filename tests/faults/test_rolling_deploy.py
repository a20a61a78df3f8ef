"""A rolling deploy: SIGTERM one of two workers mid-run and start its replacement.

The drained worker hands back what it had not started, lets its running tasks finish and acks
them, and exits 0: nothing is lost and nothing runs twice. The workers consume two queues, so
each holds deliveries waiting for a free slot (one prefetch per queue, one concurrency limit)
and the drain has something to hand back, as well as tasks to finish.
"""

from __future__ import annotations

import re
import signal

import pytest

from hare.core.topology import DEAD_SUFFIX
from tests.apps.fault_app import Ledger
from tests.faults.conftest import (
    Figures,
    WorkerProcess,
    Workers,
    jobs,
    producer_app,
    publish_jobs,
    running_in,
    wait_all_ended,
    wait_mid_run,
)

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

TASKS = 2_000
CONCURRENCY = 32
DRAIN_TIMEOUT = 30.0


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_rolling_deploy_runs_every_task_exactly_once(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
    queue_type: str,
) -> None:
    queues = [f"deploy-{unique}-a", f"deploy-{unique}-b"]
    cleanup.extend(queues)
    todo = jobs("d", TASKS, 20, 200)
    keys = {key for _, key, _ in todo}
    app = producer_app(fault_url, queues[0], queue_type=queue_type)

    def start(name: str) -> WorkerProcess:
        return workers.start(
            ",".join(queues),
            name=name,
            queue_type=queue_type,
            concurrency=CONCURRENCY,
            drain_timeout=DRAIN_TIMEOUT,
        )

    try:
        old, other = start("old"), start("other")
        await old.wait_ready()
        await other.wait_ready()
        await publish_jobs(app, todo, queues=queues)

        await wait_mid_run(ledger, old.pid, done=TASKS // 4)
        old.signal(signal.SIGTERM)
        replacement = start("replacement")
        old_code = await old.wait_exit(within=DRAIN_TIMEOUT + 30)
        assert old.signalled_at is not None and old.exited_at is not None
        drain_seconds = old.exited_at - old.signalled_at

        await wait_all_ended(ledger, keys)
        other_code, replacement_code = await other.stop(), await replacement.stop()
        transport = (await app.publisher()).transport
        left = [await transport.message_count(queue) for queue in queues]
        dead = [await transport.message_count(queue + DEAD_SUFFIX) for queue in queues]
    finally:
        await app.aclose()

    ledger.refresh()
    starts = ledger.starts()
    at_term = running_in(ledger, old.pid, old.signalled_at)
    log = old.log()
    handed_back = sum(int(n) for n in re.findall(r"handed back (\d+) deliver", log))
    requeued = sum(int(n) for n in re.findall(r"(\d+) still running after", log))
    duplicates = {key: n for key, n in starts.items() if n > 1}
    figures(
        "rolling deploy",
        queue_type=queue_type,
        tasks=TASKS,
        task_ms="20-200",
        workers=3,
        queues=len(queues),
        concurrency=CONCURRENCY,
        sigterms=1,
        running_at_sigterm=len(at_term),
        handed_back=handed_back,
        requeued_after_drain_timeout=requeued,
        duplicates=len(duplicates),
        lost=len(keys - ledger.ended()),
        drained_exit_code=old_code,
        drain_seconds=round(drain_seconds, 2),
        drain_timeout=DRAIN_TIMEOUT,
        ran_by_replacement=len(ledger.of_pid(replacement.pid)),
    )

    # The drained worker exited 0 within its drain timeout...
    assert old_code == 0, old.log_tail()
    assert drain_seconds < DRAIN_TIMEOUT, old.log_tail()
    # ...with tasks in progress, which it finished itself rather than requeue.
    assert at_term, "the SIGTERM found the old worker idle: not a mid-run deploy"
    assert all(run.ended is not None for run in ledger.of_pid(old.pid)), old.log_tail()
    assert requeued == 0, old.log_tail()
    assert handed_back > 0, "nothing waited for a slot: the hand-back went untested"
    # Every task ran exactly once, to its end.
    assert set(starts) == keys
    assert duplicates == {}, sorted(duplicates)[:20]
    assert ledger.ended() == keys
    # Nothing is left over or dead-lettered, and the others stopped cleanly too.
    assert (left, dead) == ([0, 0], [0, 0])
    assert (other_code, replacement_code) == (0, 0)
