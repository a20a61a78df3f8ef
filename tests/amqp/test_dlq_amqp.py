"""`hare dlq` on a real RabbitMQ: the 1,000-task round trip, browse order, the command itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import aclosing
from pathlib import Path

import pytest

from hare import dlq
from hare.cli.common import EXIT_BROKER, EXIT_OK, EXIT_USAGE
from hare.core.topology import dead_letter_queue
from hare.errors import BrokerError
from hare.testing import Ledger, eventually, running_worker
from hare.transport.base import Transport
from tests.amqp.helpers import amqp_app, delete_queues, take_all

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]


class Flaky:
    """An app on `queue` whose task `t.flaky(key)` fails while `broken` is set."""

    def __init__(self, url: str, queue: str) -> None:
        self.app = amqp_app(url, default_queue=queue)
        self.queue = queue
        self.ledger = Ledger()
        self.ledger.bind()
        self.broken = True

        @self.app.task(name="t.flaky")
        async def flaky(key: str) -> None:
            if self.broken:
                raise ValueError(f"broken {key}")
            self.ledger.record(key)

    async def transport(self) -> Transport:
        return (await self.app.publisher()).transport

    async def send(self, keys: list[str]) -> None:
        """Send one task per key, the key being its task id too."""
        for start in range(0, len(keys), 200):
            await asyncio.gather(
                *(
                    self.app.asend_task("t.flaky", [key], task_id=key)
                    for key in keys[start : start + 200]
                )
            )

    async def count(self, queue: str) -> int:
        return await (await self.transport()).message_count(queue)

    async def fail(self, keys: list[str]) -> None:
        """Send `keys` and run a worker until each of them is a dead letter."""
        dead = self.queue + ".dead"
        before = await self.count(dead) if keys and await self._declared() else 0
        await self.send(keys)
        async with running_worker(self.app, concurrency=64):
            await eventually(
                lambda: self._reaches(dead, before + len(keys)), within=60, interval=0.05
            )

    async def _declared(self) -> bool:
        try:
            await self.count(self.queue + ".dead")
        except BrokerError:
            return False
        return True

    async def _reaches(self, queue: str, n: int) -> bool:
        return await self.count(queue) >= n

    async def close(self) -> None:
        await delete_queues(await self.transport(), self.queue, self.queue + ".dead")
        await self.app.aclose()


async def test_a_thousand_dead_letters_round_trip(amqp_url: str, unique: str) -> None:
    """Fail 1,000 tasks, list them, fix the cause, replay: each runs once; purge empties."""
    shop = Flaky(amqp_url, f"dlq-{unique}")
    keys = [f"{unique}-{n}" for n in range(1000)]
    try:
        await shop.fail(keys)
        assert await shop.count(shop.queue + ".dead") == 1000

        started = time.monotonic()
        async with aclosing(dlq.list_dead_letters(shop.app, shop.queue)) as found:
            rows = [row async for row in found]
        listed = time.monotonic() - started
        assert len(rows) == 1000
        assert Counter(row.reason for row in rows) == {"failed": 1000}
        assert {row.id for row in rows} == set(keys)
        assert {row.task for row in rows} == {"t.flaky"}
        assert all(row.exception == "ValueError" and row.attempts == 1 for row in rows)
        assert await shop.count(shop.queue + ".dead") == 1000  # the browse took nothing

        shop.broken = False  # the cause is fixed
        started = time.monotonic()
        done = await dlq.replay(shop.app, shop.queue, dlq.Selector(every=True))
        replayed = time.monotonic() - started
        assert (done.replayed, done.examined, done.error) == (1000, 1000, None)
        assert await shop.count(shop.queue + ".dead") == 0

        async with running_worker(shop.app, concurrency=64):
            await shop.ledger.wait_for(1000, within=60)
            await eventually(lambda: _empty(shop, shop.queue), within=20)
        runs = shop.ledger.counts()
        assert set(runs) == set(keys)
        assert max(runs.values()) == 1, [k for k, c in runs.items() if c > 1][:10]
        assert await shop.count(shop.queue + ".dead") == 0
        print(f"\nlist 1,000: {listed:.2f}s; replay 1,000: {replayed:.2f}s")

        shop.broken = True
        await shop.fail([f"{unique}-again-{n}" for n in range(10)])
        assert await dlq.purge(shop.app, shop.queue) == dlq.PurgeSummary(purged=10, kept=0)
        assert await shop.count(shop.queue + ".dead") == 0
        assert await shop.count(shop.queue) == 0
    finally:
        await shop.close()


async def _empty(shop: Flaky, queue: str) -> bool:
    return await shop.count(queue) == 0


async def test_browsing_returns_every_message_to_its_place(amqp_url: str, unique: str) -> None:
    shop = Flaky(amqp_url, f"dlq-order-{unique}")
    keys = [f"{unique}-{n}" for n in range(30)]
    try:
        await shop.fail(keys)
        dead = shop.queue + ".dead"
        async with aclosing(dlq.list_dead_letters(shop.app, shop.queue)) as found:
            order = [row.id async for row in found]
        async with aclosing(dlq.list_dead_letters(shop.app, shop.queue)) as found:
            async for row in found:
                if row.position == 10:
                    break  # stop half-way: the rest goes back too
        assert await dlq.find(shop.app, dead, order[20]) is not None
        done = await dlq.replay(shop.app, dead, dlq.Selector(ids=frozenset(order[5:8])))
        assert done.replayed == 3
        assert await shop.count(dead) == 27
        taken = await take_all(await shop.transport(), dead)
        assert [d.properties.headers["id"] for d in taken] == order[:5] + order[8:]
    finally:
        await shop.close()


async def test_dead_letters_survive_more_browses_than_rabbitmq_4_s_default_limit(
    amqp_url: str, unique: str
) -> None:
    # A quorum queue counts each hand-back as a delivery; 4.x drops a message after 20 unless
    # the queue says otherwise. hare's dead-letter queue is quorum, with its own limit.
    shop = Flaky(amqp_url, f"dlq-browse-{unique}")
    try:
        await shop.fail([f"{unique}-a", f"{unique}-b"])
        dead = shop.queue + ".dead"
        # The broker takes hare's declaration as the one it has: quorum, explicit limit.
        await (await shop.transport()).declare_queue(dead_letter_queue(shop.queue, "quorum"))
        for _ in range(25):
            async with aclosing(dlq.list_dead_letters(shop.app, shop.queue)) as found:
                assert len([row async for row in found]) == 2
        assert await shop.count(dead) == 2
    finally:
        await shop.close()


APP_MODULE = """
import os

from hare import Hare

app = Hare("clishop", default_queue=os.environ["DLQ_QUEUE"], connect_timeout=5)


@app.task(name="t.flaky")
async def flaky(key: str) -> None:
    raise ValueError("broken " + key)
"""


def _hare(tmp_path: Path, url: str, queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HARE_BROKER_URL": url,
        "DLQ_QUEUE": queue,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    return subprocess.run(
        [sys.executable, "-m", "hare", "dlq", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_hare_dlq_command(amqp_url: str, unique: str, tmp_path: Path) -> None:
    (tmp_path / "clishop.py").write_text(textwrap.dedent(APP_MODULE))
    shop = Flaky(amqp_url, f"dlq-cli-{unique}")
    keys = [f"{unique}-{n}" for n in range(5)]

    async def hare(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(_hare, tmp_path, amqp_url, shop.queue, *args)

    try:
        await shop.fail(keys)
        listing = await hare("list", "clishop:app")
        assert listing.returncode == EXIT_OK, listing.stderr
        assert f"5 dead letters in {shop.queue}.dead" in listing.stdout
        assert "by reason: failed 5" in listing.stdout
        assert "ValueError: broken" in listing.stdout

        show = await hare("show", "clishop:app", shop.queue, keys[2])
        assert show.returncode == EXIT_OK, show.stderr
        assert f"args:       ('{keys[2]}',)" in show.stdout
        assert "Traceback (most recent call last)" in show.stdout

        refused = await hare("purge", "clishop:app", shop.queue)
        assert refused.returncode == EXIT_USAGE and "add --yes" in refused.stderr

        replay = await hare("replay", "clishop:app", shop.queue, "--task", "t.flaky")
        assert replay.returncode == EXIT_OK, replay.stderr
        assert f"replayed 5 dead letters from {shop.queue}.dead" in replay.stdout
        assert await shop.count(shop.queue) == 5
        assert await shop.count(shop.queue + ".dead") == 0

        # Still broken: they come back, counting the replay.
        async with running_worker(shop.app, concurrency=8):
            await eventually(lambda: shop._reaches(shop.queue + ".dead", 5), within=20)
        async with aclosing(dlq.list_dead_letters(shop.app, shop.queue)) as found:
            assert {row.replays async for row in found} == {1}

        purge = await hare("purge", "clishop:app", shop.queue + ".dead", "--yes")
        assert purge.returncode == EXIT_OK, purge.stderr
        assert f"purged 5 dead letters from {shop.queue}.dead" in purge.stdout
        assert await shop.count(shop.queue + ".dead") == 0

        gone = await asyncio.to_thread(
            _hare, tmp_path, "amqp://guest:guest@127.0.0.1:1/", shop.queue, "list", "clishop:app"
        )
        assert gone.returncode == EXIT_BROKER and "connection refused at 127.0.0.1:1" in gone.stderr
        assert "Traceback" not in gone.stderr
    finally:
        await shop.close()
