"""`hare status`, `purge`, `delayed` and `schedules` through `main(argv)`, on the memory broker
(it lives in the app object, so the command and the test share it) with a manual clock."""

from __future__ import annotations

import asyncio
import io
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hare import Hare, every
from hare.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from hare.cli.main import main
from hare.core import ladder
from hare.periodic.ticks import slot_name
from hare.testing import ManualClock, publish_raw, running_worker, until
from tests.runtime import GOOD_BODY

APP = """
from hare import Hare, every
from hare.testing import ManualClock

app = Hare(
    "opshop",
    broker="memory://",
    clock=ManualClock(),
    environ={},
    default_queue="work",
    generation=5,
)
ran = []


@app.task(queue="web.emails")
async def send(to: str) -> None:
    ran.append(to)


@app.periodic(every(minutes=5), queue="reports")
def report() -> None:
    pass
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    (tmp_path / "opshop.py").write_text(textwrap.dedent(APP))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opshop", raising=False)
    import opshop  # type: ignore[import-not-found]

    return opshop  # type: ignore[no-any-return]


async def _offer_ticks(app: Hare) -> None:
    """Run a worker for a moment: it declares the queues and offers the schedule's tick."""
    async with running_worker(app, queues=["work"]):
        pass
    await app.aclose()


async def _send(app: Hare, *calls: tuple[Any, ...]) -> list[str]:
    """Send `opshop.send(to)` for each `(to, countdown[, priority])`."""
    ids = []
    for to, countdown, *priority in calls:
        options = {"countdown": countdown, "priority": priority[0] if priority else None}
        sent = await app.asend_task("opshop.send", (to,), {}, **options)
        ids.append(sent.id)
    await app.aclose()
    return ids


async def _dead_letter(app: Hare) -> None:
    transport = app.make_transport()
    await transport.connect()
    await publish_raw(transport, "work.dead", GOOD_BODY, headers={"task": "x", "id": "d1"})
    await transport.close()


def test_status_shows_queues_dead_letters_delays_and_the_fleet_s_schedule(
    shop: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    app: Hare = shop.app
    asyncio.run(_offer_ticks(app))
    asyncio.run(_send(app, ("a", None), ("b", None), ("later", 60.0)))
    asyncio.run(_dead_letter(app))
    assert main(["status", "opshop", "-t", "0.05"]) == EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "broker:   memory://"
    assert lines[1] == "workers:  0 consuming these queues"
    rows = {line.split()[0]: line.split()[1:] for line in lines[4:10]}
    assert lines[2:4] == ["queues:", "  queue            ready  unacked  workers  dead letters"]
    assert rows == {  # each work queue with its priority band, as a worker consumes them
        "work": ["0", "?", "0", "1"],
        "work.high": ["0", "?", "0", "0"],
        "reports": ["-", "?", "0", "-"],  # no such queue yet: nothing was published there
        "reports.high": ["-", "?", "0", "-"],
        "web.emails": ["2", "?", "0", "0"],
        "web.emails.high": ["-", "?", "0", "-"],
    }
    assert "unacked: unknown, the broker has no management API" in out
    due = "2027-01-15T08:01:00Z"  # the manual clock starts at 1.8e9
    assert f"delayed:  1 in the delay ladder (L09 1); next due {due}" in out
    assert "opshop.report  opshop.report  reports  every:300s@0" in out
    assert "every:300s@0 (generation 5)  2027-01-15T08:05:00+00:00  yes" in out


def test_schedules_shows_the_pending_tick_s_spec_and_leaves_the_tick_in_place(
    shop: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    app: Hare = shop.app
    asyncio.run(_offer_ticks(app))
    # This code's spec changed since the fleet's tick was offered (a deploy in progress).
    entry = app.periodics["opshop.report"]
    app.periodics["opshop.report"] = replace(entry, schedule=every(minutes=10))
    for _ in range(2):  # reading it twice: the tick is still there, once
        assert main(["schedules", "opshop"]) == EXIT_OK
        out = capsys.readouterr().out
        assert "every:600s@0      every:300s@0 (generation 5)  2027-01-15T08:05:00+00:00" in out
        assert asyncio.run(_depth(app, slot_name("opshop", "opshop.report"))) == 1


async def _depth(app: Hare, queue: str) -> int:
    transport = app.make_transport()
    await transport.connect()
    try:
        return await transport.message_count(queue)
    finally:
        await transport.close()


def test_purge_asks_first(
    shop: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app: Hare = shop.app
    asyncio.run(_send(app, ("a", None), ("b", None), ("c", None)))
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert main(["purge", "opshop", "web.emails"]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.out == "web.emails: 3 messages waiting\n"
    assert "Drop 3 messages from 1 queue for good? [y/N] not confirmed" in captured.err
    assert asyncio.run(_depth(app, "web.emails")) == 3
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert main(["purge", "opshop", "web.emails"]) == EXIT_OK
    assert "purged 3 messages from web.emails" in capsys.readouterr().out
    asyncio.run(_send(app, ("d", None), ("urgent", None, 9)))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # -f does not read it
    assert main(["purge", "-A", "opshop", "web.emails", "-f"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "web.emails.high: 1 message waiting" in out  # the queue's priority band goes too
    assert asyncio.run(_depth(app, "web.emails")) == 0
    assert asyncio.run(_depth(app, "web.emails.high")) == 0
    assert main(["purge", "opshop", "nowhere", "-f"]) == EXIT_USAGE
    assert "hare purge: " in capsys.readouterr().err
    assert main(["purge", "opshop", ladder.level_name(3)]) == EXIT_USAGE
    assert "is hare's own" in capsys.readouterr().err


def test_delayed_list_show_and_cancel(shop: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    app: Hare = shop.app
    kept, cancelled, far = asyncio.run(
        _send(app, ("kept", 60.0), ("cancelled", 60.0), ("far", 2 * 86_400.0))
    )
    assert main(["delayed", "list", "opshop"]) == EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["due", "(UTC)", "in", "task", "id", "queue", "where"]
    assert [line.split()[4] for line in lines[1:4]] == [kept, cancelled, far]  # soonest first
    assert lines[1].split()[:3] == ["2027-01-15T08:01:00Z", "1.0", "m"]
    assert lines[1].split()[5:] == ["web.emails", ladder.level_name(9)]
    assert lines[4] == "3 delayed messages in the ladder (L09 2, L20 1)"

    assert main(["delayed", "show", "opshop", cancelled]) == EXIT_OK
    out = capsys.readouterr().out
    assert "task:     opshop.send\n" in out and "args:     ('cancelled',)\n" in out
    assert main(["delayed", "show", "opshop", "nobody"]) == EXIT_FAILED
    assert "no task 'nobody' in the delay ladder" in capsys.readouterr().err

    assert main(["delayed", "cancel", "opshop", far]) == EXIT_FAILED
    assert "is due in 2.0 d; a revocation lasts at most 1.0 d" in capsys.readouterr().err
    assert main(["delayed", "cancel", "opshop", cancelled]) == EXIT_OK
    assert f"revoked {cancelled} (opshop.send, due 2027-01-15T08:01:00Z)" in (
        capsys.readouterr().out
    )
    # Still in the ladder; the worker that receives it discards it unrun.
    assert asyncio.run(_run_until_due(app, shop.ran)) == ["kept"]


async def _run_until_due(app: Hare, ran: list[str]) -> list[str]:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    async with running_worker(app, queues=["web.emails"]):
        await clock.advance_by(61)
        await until(lambda: "kept" in ran, clock, rounds=2000)
        await clock.yield_control()
    await app.aclose()
    return ran


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_read_of_the_ladder_shows_a_progress_bar_on_a_terminal(
    shop: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app: Hare = shop.app
    asyncio.run(_send(app, *((f"t{n}", 30.0 + n) for n in range(5))))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr("hare.cli.progress.PROGRESS_THRESHOLD", 2)
    assert main(["delayed", "list", "opshop"]) == EXIT_OK
    assert "\rreading the delay ladder [" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")  # cleared before the table
    assert "5 delayed messages in the ladder" in capsys.readouterr().out
