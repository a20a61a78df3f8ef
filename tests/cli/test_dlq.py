"""`hare dlq` on the memory transport with a manual clock: browse, show, replay, purge."""

from __future__ import annotations

import asyncio
import io
import sys
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from hare import Hare, dlq
from hare.cli.common import EXIT_OK, EXIT_USAGE
from hare.cli.dlq import parse_age
from hare.cli.main import main
from hare.cli.progress import Progress as _Progress
from hare.core.envelope import Delivery
from hare.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DeadLetterQueueNotFound,
    PublishNacked,
)
from hare.publisher import Publisher
from hare.testing import Ledger, ManualClock, drain, memory_app, publish_raw, running_worker
from hare.transport.base import Transport
from hare.transport.memory.transport import MemoryTransport
from tests.runtime import GOOD_BODY

pytestmark = pytest.mark.anyio


class Shop:
    """An app whose `t.flaky` fails while `broken` is set, and a ledger of what ran."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.app = memory_app(self.clock, default_queue="work")
        self.ledger = Ledger()
        self.broken = True

        @self.app.task(name="t.flaky")
        async def flaky(n: int) -> None:
            if self.broken:
                raise ValueError(f"broken {n}")
            self.ledger.record(f"flaky-{n}")

        @self.app.task(name="t.other")
        async def other(n: int) -> None:
            if self.broken:
                raise KeyError(n)
            self.ledger.record(f"other-{n}")

    async def transport(self) -> Transport:
        return (await self.app.publisher()).transport

    async def count(self, queue: str) -> int:
        return await (await self.transport()).message_count(queue)

    async def fail(
        self, flaky: int = 0, other: int = 0, raw: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Make dead letters: `flaky` and `other` failures, then raw (malformed) messages."""
        before = await self.count("work.dead")
        async with running_worker(self.app, concurrency=1):
            for n in range(flaky):
                await self.app.asend_task("t.flaky", [n])
            for n in range(other):
                await self.app.asend_task("t.other", [n])
            for spec in raw:
                await publish_raw(await self.transport(), "work", **spec)
            await self.wait_dead(before + flaky + other + len(raw))

    async def wait_dead(self, n: int) -> None:
        for _ in range(500):
            if await self.count("work.dead") == n:
                return
            await self.clock.yield_control()
        assert await self.count("work.dead") == n

    async def rows(self, queue: str = "work") -> list[dlq.DeadLetterRow]:
        async with aclosing(dlq.list_dead_letters(self.app, queue)) as found:
            return [row async for row in found]

    async def run_all(self, n: int) -> None:
        """Run a worker until `n` runs are in the ledger, and the work queue is empty."""
        async with running_worker(self.app):
            await self.ledger.wait_for(n)
            await self.clock.yield_control()
        assert await self.count("work") == 0


@pytest.fixture
async def shop() -> Shop:
    shop = Shop()
    shop.ledger.bind()
    await (await shop.app.publisher()).ensure_queue("work")  # and work.dead
    return shop


async def test_list_gives_a_row_per_dead_letter_with_its_reason(shop: Shop) -> None:
    await shop.fail(flaky=3, other=2)
    rows = await shop.rows()
    assert [row.position for row in rows] == [1, 2, 3, 4, 5]
    assert Counter(row.task for row in rows) == {"t.flaky": 3, "t.other": 2}
    assert {row.reason for row in rows} == {"failed"}
    flaky = rows[0]
    assert flaky.queue == "work"
    assert flaky.exception == "ValueError" and flaky.detail == "broken 0"
    assert flaky.attempts == 1 and flaky.replays == 0
    assert flaky.dead_at is not None and flaky.dead_at.timestamp() == shop.clock.time()
    assert rows[3].exception == "KeyError"
    assert await shop.rows("work.dead") == rows  # either spelling of the queue


async def test_browsing_leaves_every_message_in_place_and_in_order(shop: Shop) -> None:
    await shop.fail(flaky=6)
    first = [row.id for row in await shop.rows()]
    assert await shop.count("work.dead") == 6
    # Stopping half-way hands the rest back too.
    async with aclosing(dlq.list_dead_letters(shop.app, "work")) as found:
        async for row in found:
            if row.position == 3:
                break
    assert await dlq.find(shop.app, "work", first[4]) is not None
    assert await shop.count("work.dead") == 6
    taken = await drain(await shop.transport(), "work.dead")
    # In order, though a quorum queue on RabbitMQ 3.x (which the memory broker models) puts
    # handed-back messages at the back: the browse took the rest before handing all back.
    assert [d.properties.headers["id"] for d in taken] == first


async def test_a_missing_dead_letter_queue_is_reported(shop: Shop) -> None:
    with pytest.raises(DeadLetterQueueNotFound, match="nowhere.dead"):
        await shop.rows("nowhere")
    with pytest.raises(DeadLetterQueueNotFound):
        await dlq.purge(shop.app, "nowhere")


async def test_show_finds_one_dead_letter_in_full(shop: Shop) -> None:
    await shop.fail(flaky=3)
    rows = await shop.rows()
    found = await dlq.find(shop.app, "work", rows[1].id)
    assert found is not None
    assert found.row == rows[1]
    assert found.args == (1,) and found.kwargs == {} and found.decode_error is None
    assert "raise ValueError" in found.properties.headers["hare-dead-traceback"]
    assert (await dlq.find(shop.app, "work", "#3")) is not None
    assert await dlq.find(shop.app, "work", "no-such-id") is None
    assert await shop.count("work.dead") == 3


async def test_replay_by_id_publishes_and_acks_only_those(shop: Shop) -> None:
    await shop.fail(flaky=5)
    rows = await shop.rows()
    chosen = {rows[1].id, rows[3].id}
    done = await dlq.replay(shop.app, "work", dlq.Selector(ids=frozenset(chosen | {"ghost"})))
    assert (done.replayed, done.examined, done.expired, done.error) == (2, 5, 0, None)
    assert done.missing == {"ghost"}
    assert [row.id for row in await shop.rows()] == [rows[i].id for i in (0, 2, 4)]
    replayed = await drain(await shop.transport(), "work")
    assert {d.properties.headers["id"] for d in replayed} == chosen
    headers = replayed[0].properties.headers
    assert headers["retries"] == 0 and headers["hare-replays"] == 1
    assert not [key for key in headers if key.startswith("hare-dead-")]
    assert headers["task"] == "t.flaky"


async def test_replay_by_task_and_then_all_runs_each_once(shop: Shop) -> None:
    await shop.fail(flaky=4, other=3)
    shop.broken = False  # the cause is fixed
    done = await dlq.replay(shop.app, "work", dlq.Selector(task="t.other"))
    assert done.replayed == 3
    assert {row.task for row in await shop.rows()} == {"t.flaky"}
    done = await dlq.replay(shop.app, "work", dlq.Selector(every=True))
    assert done.replayed == 4
    await shop.run_all(7)
    assert shop.ledger.counts() == Counter(
        [f"flaky-{n}" for n in range(4)] + [f"other-{n}" for n in range(3)]
    )
    assert await shop.count("work.dead") == 0


async def test_a_replay_that_fails_again_counts_its_replays(shop: Shop) -> None:
    await shop.fail(flaky=1)
    await dlq.replay(shop.app, "work", dlq.Selector(every=True))
    async with running_worker(shop.app):
        await shop.wait_dead(1)
    (row,) = await shop.rows()
    assert row.replays == 1 and row.attempts == 1 and row.reason == "failed"


async def test_replay_with_countdown_goes_through_the_ladder(shop: Shop) -> None:
    await shop.fail(flaky=2)
    shop.broken = False
    done = await dlq.replay(shop.app, "work", dlq.Selector(every=True), countdown=30)
    assert done.replayed == 2
    assert await shop.count("work.dead") == 0
    assert await shop.count("work") == 0  # in the ladder
    await shop.clock.advance_by(29)
    assert await shop.count("work") == 0
    await shop.clock.advance_by(1.1)
    assert await shop.count("work") == 2
    await shop.run_all(2)
    assert shop.ledger.counts() == {"flaky-0": 1, "flaky-1": 1}


async def test_replay_leaves_a_dead_letter_past_its_expires(shop: Shop) -> None:
    async with running_worker(shop.app, concurrency=1):
        await shop.app.asend_task("t.flaky", [0], expires=60)
        await shop.app.asend_task("t.flaky", [1])
        await shop.wait_dead(2)
    await shop.clock.advance_by(61)
    done = await dlq.replay(shop.app, "work", dlq.Selector(every=True))
    assert (done.replayed, done.expired) == (1, 1)
    assert [row.detail for row in await shop.rows()] == ["broken 0"]


async def test_a_failed_publish_leaves_the_dead_letter_in_place(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    await shop.fail(flaky=3)

    async def refuse(self: Publisher, queue: str, message: Any) -> None:
        raise PublishNacked("refused", exchange="", routing_key=queue)

    monkeypatch.setattr(Publisher, "send", refuse)
    done = await dlq.replay(shop.app, "work", dlq.Selector(every=True))
    assert done.replayed == 0 and isinstance(done.error, PublishNacked)
    assert await shop.count("work.dead") == 3


async def test_a_broker_lost_mid_replay_stops_it_and_loses_nothing(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    await shop.fail(flaky=5)
    real_get = MemoryTransport.get
    calls = 0

    async def get(self: MemoryTransport, queue: str) -> Delivery | None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise BrokerUnavailable("the broker connection is gone")
        return await real_get(self, queue)

    monkeypatch.setattr(MemoryTransport, "get", get)
    done = await dlq.replay(shop.app, "work", dlq.Selector(every=True))
    assert isinstance(done.error, BrokerUnavailable)
    assert done.replayed == 3
    assert await shop.count("work") + await shop.count("work.dead") == 5


async def test_replay_of_a_missing_queue_says_so(shop: Shop) -> None:
    with pytest.raises(DeadLetterQueueNotFound):
        await dlq.replay(shop.app, "nowhere", dlq.Selector(every=True))


async def test_purge_drops_every_dead_letter(shop: Shop) -> None:
    await shop.fail(flaky=4)
    assert await dlq.purge(shop.app, "work.dead") == dlq.PurgeSummary(purged=4, kept=0)
    assert await shop.count("work.dead") == 0


async def test_purge_older_than_keeps_the_recent_ones(shop: Shop) -> None:
    await shop.fail(flaky=2)
    await shop.clock.advance_by(3 * 3600)
    await shop.fail(other=1)
    done = await dlq.purge(shop.app, "work", older_than=2 * 3600)
    assert done == dlq.PurgeSummary(purged=2, kept=1)
    assert [row.task for row in await shop.rows()] == ["t.other"]


MALFORMED = [
    {"body": b"{not json", "headers": {"task": "t.flaky", "id": "bad-1"}},
    {"body": GOOD_BODY, "headers": {"x-trace": "abc"}},  # no task, no id, no correlation id
]


async def test_a_malformed_dead_letter_is_listed_shown_and_replayed_raw(shop: Shop) -> None:
    await shop.fail(flaky=1, raw=MALFORMED)
    rows = await shop.rows()
    assert [(row.reason, row.task, row.id) for row in rows[1:]] == [
        ("undecodable", "t.flaky", "bad-1"),
        ("missing-header", None, "#3"),
    ]
    shown = await dlq.find(shop.app, "work", "bad-1")
    assert shown is not None and shown.args is None and shown.body == b"{not json"
    assert shown.decode_error is not None and shown.decode_error.startswith("undecodable")
    nameless = await dlq.find(shop.app, "work", "#3")
    assert nameless is not None and nameless.decode_error is not None

    done = await dlq.replay(shop.app, "work", dlq.Selector(ids=frozenset({"bad-1", "#3"})))
    assert done.replayed == 2 and done.missing == frozenset()
    raw = {d.body: d.properties for d in await drain(await shop.transport(), "work")}
    assert set(raw) == {b"{not json", GOOD_BODY}
    assert raw[b"{not json"].content_type == "application/json"
    # basic.get from a quorum work queue adds x-delivery-count: the rest is what was sent.
    assert _without_count(raw[b"{not json"].headers) == {
        "task": "t.flaky",
        "id": "bad-1",
        "hare-replays": 1,
    }
    assert _without_count(raw[GOOD_BODY].headers) == {"x-trace": "abc", "hare-replays": 1}
    assert [row.task for row in await shop.rows()] == ["t.flaky"]


def _without_count(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in headers.items() if key != "x-delivery-count"}


def test_a_selector_takes_exactly_one_criterion() -> None:
    with pytest.raises(ConfigurationError):
        dlq.Selector()
    with pytest.raises(ConfigurationError):
        dlq.Selector(every=True, task="t.flaky")


async def test_a_countdown_beyond_the_ladder_is_refused(shop: Shop) -> None:
    with pytest.raises(ConfigurationError):
        await dlq.replay(shop.app, "work", dlq.Selector(every=True), countdown=1e12)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800)]
)
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


# -- the command, in this process (the memory broker lives in the app object) ---------------------


APP_MODULE = """
from hare import Hare
from hare.testing import ManualClock

app = Hare("shop", broker="memory://", clock=ManualClock(), environ={}, default_queue="work")
broken = True


@app.task(name="shop.flaky")
async def flaky(n: int) -> None:
    if broken:
        raise ValueError(f"broken {n}")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "dlqshop").mkdir()
    (tmp_path / "dlqshop" / "__init__.py").write_text("")
    (tmp_path / "dlqshop" / "tasks.py").write_text(textwrap.dedent(APP_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("dlqshop")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["replay", "dlqshop.tasks:app", "work"], "give exactly one of --all, --id"),
        (["replay", "dlqshop.tasks:app", "work", "--all", "--task", "x"], "exactly one"),
        (["replay", "dlqshop.tasks:app", "work", "--all", "--countdown", "-1"], "negative"),
        (["purge", "dlqshop.tasks:app", "work"], "for good; add --yes"),
        (["purge", "dlqshop.tasks:app", "work", "--yes", "--older-than", "7x"], "not an age"),
        (["list", "nope.tasks:app"], "cannot import module 'nope.tasks'"),
        (["list", "dlqshop.tasks:app", "nowhere"], "no queue 'nowhere.dead'"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main(["dlq", *argv]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert words in captured.err, captured.err
    assert captured.out == ""


def test_the_command_lists_replays_and_purges(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dlqshop.tasks as shop  # type: ignore[import-not-found]

    app: Hare = shop.app
    asyncio.run(_fail_flaky(app, 3))
    assert main(["dlq", "list", "dlqshop.tasks:app"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "3 dead letters in work.dead" in out
    assert "by reason: failed 3" in out and "by task:   shop.flaky 3" in out
    assert "ValueError: broken 2" in out

    assert main(["dlq", "show", "dlqshop.tasks:app", "work", "#2"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "args:       (1,)" in out and "raise ValueError" in out

    assert main(["dlq", "replay", "dlqshop.tasks:app", "work", "--id", "#1"]) == EXIT_OK
    assert "replayed 1 dead letter from work.dead (3 examined)" in capsys.readouterr().out
    assert main(["dlq", "replay", "dlqshop.tasks:app", "work", "--id", "ghost"]) == 1
    assert "not found in work.dead: ghost" in capsys.readouterr().out

    assert main(["dlq", "purge", "dlqshop.tasks:app", "work.dead", "--yes"]) == EXIT_OK
    assert "purged 2 dead letters from work.dead" in capsys.readouterr().out
    assert main(["dlq", "list", "dlqshop.tasks:app", "work"]) == EXIT_OK
    assert "0 dead letters in work.dead" in capsys.readouterr().out


async def _fail_flaky(app: Hare, n: int) -> None:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    async with running_worker(app, concurrency=1) as worker:
        for i in range(n):
            await app.asend_task("shop.flaky", [i])
        for _ in range(500):
            if worker.processed == n:
                break
            await clock.yield_control()
    await app.aclose()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_only_on_a_terminal_and_for_long_queues() -> None:
    terminal = _Terminal()
    bar = _Progress("replaying work.dead", terminal)
    bar(10, 500)
    assert terminal.getvalue() == ""  # short: no bar
    bar(2500, 10_000)
    assert terminal.getvalue().startswith("\rreplaying work.dead [#######-")
    assert " 25% 2500/10000" in terminal.getvalue()
    bar.clear()
    assert terminal.getvalue().endswith("\r")
    pipe = io.StringIO()
    _Progress("replaying work.dead", pipe)(2500, 10_000)
    assert pipe.getvalue() == ""  # not a terminal: only the final summary line, on stdout
