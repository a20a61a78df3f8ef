"""The worker end to end on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hare import Reject
from hare.core.envelope import Delivery
from hare.core.topology import DEAD_SUFFIX
from hare.testing import Ledger, eventually, publish_raw, running_worker
from hare.transport.base import Transport
from tests.amqp.helpers import amqp_app, delete_queues, take_all
from tests.runtime import BAD_INPUTS, GOOD_BODY

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_ten_thousand_tasks_each_run_exactly_once_by_hare_worker(
    amqp_url: str, unique: str, tmp_path: Path
) -> None:
    """Publish 10,000 tasks, run them with the `hare worker` command, read the ledger."""
    n = 10_000
    queue = f"ledger-{unique}"
    ledger_file = tmp_path / "ledger.txt"
    env = {
        **os.environ,
        "LEDGER_FILE": str(ledger_file),
        "LEDGER_QUEUE": queue,
        "HARE_BROKER_URL": amqp_url,
        "PYTHONPATH": str(ROOT),
    }
    app = amqp_app(amqp_url, default_queue=queue)
    transport = (await app.publisher()).transport
    try:
        keys = [f"k{i}" for i in range(n)]
        for start in range(0, n, 500):
            await asyncio.gather(
                *(
                    app.asend_task("ledger.record" if i % 2 else "ledger.record_sync", [k])
                    for i, k in enumerate(keys[start : start + 500], start=start)
                )
            )
        worker = subprocess.Popen(  # noqa: ASYNC220 - Popen only starts it
            [
                sys.executable,
                "-m",
                "hare",
                "worker",
                "tests.apps.ledger_app:app",
                "-Q",
                queue,
                "-c",
                "64",
                "--loglevel",
                "warning",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:

            def count() -> int:
                return len(ledger_file.read_text().splitlines()) if ledger_file.exists() else 0

            await eventually(lambda: count() >= n, within=120, interval=0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(worker.communicate, timeout=60)
        assert worker.returncode == 0, output
        runs = Counter(ledger_file.read_text().split())
        assert set(runs) == set(keys)
        assert max(runs.values()) == 1, [k for k, c in runs.items() if c > 1][:10]
        assert await transport.message_count(queue) == 0
        assert await transport.message_count(queue + DEAD_SUFFIX) == 0
    finally:
        await delete_queues(transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


async def test_bad_inputs_are_dead_lettered_and_good_ones_still_run(
    amqp_url: str, unique: str
) -> None:
    queue = f"bad-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.add")
    async def add(x: int, y: int) -> int:
        ledger.record("add", x + y)
        return x + y

    @app.task(name="t.refuse")
    async def refuse() -> None:
        raise Reject("never")

    @app.task(name="t.boom")
    def boom() -> None:
        raise KeyError("missing")

    bad = BAD_INPUTS
    try:
        async with running_worker(app, queues=[queue]):
            transport = (await app.publisher()).transport
            for n, (_, body, headers, content_type) in enumerate(bad, start=1):
                await publish_raw(
                    transport, queue, body, headers=headers, content_type=content_type
                )
                await publish_raw(
                    transport, queue, GOOD_BODY, headers={"task": "t.add", "id": f"good-{n}"}
                )
                await ledger.wait_for(n)
            await app.asend_task("t.refuse")
            await app.asend_task("t.boom")
            await add.adelay(5, 5)
            await ledger.wait_for(len(bad) + 1)
            dead = await eventually(
                lambda: _collect(transport, queue + DEAD_SUFFIX, len(bad) + 2), within=20
            )
        reasons = Counter(d.properties.headers["hare-dead-reason"] for d in dead)
        expected = Counter(r for r, *_ in bad) + Counter({"rejected": 1, "failed": 1})
        assert reasons == expected
        failed = next(d for d in dead if d.properties.headers["hare-dead-reason"] == "failed")
        assert failed.properties.headers["hare-dead-exception"] == "KeyError"
        assert "raise KeyError" in failed.properties.headers["hare-dead-traceback"]
        assert ledger.counts() == {"add": len(bad) + 1}
    finally:
        # the worker's connection closed with it; clean up on the app's own
        await delete_queues((await app.publisher()).transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


_collected: dict[str, list[Delivery]] = {}


async def _collect(transport: Transport, queue: str, n: int) -> list[Delivery] | None:
    got = _collected.setdefault(queue, [])
    got += await take_all(transport, queue)
    return got if len(got) >= n else None
