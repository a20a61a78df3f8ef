"""The worker's task lines: Celery's formats, the task's data on each record, the loggers a
hare app and a hare_compat app log them on, and `throws` logged without a traceback."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from hare.errors import Retry
from hare.testing import ManualClock, eventually, memory_app, running_worker
from hare.worker import tracelog
from hare_compat import Celery

pytestmark = pytest.mark.anyio

HARE = ("hare.worker.received", "hare.trace")
CELERY = ("celery.worker.strategy", "celery.app.trace")


def data(record: logging.LogRecord) -> dict[str, Any]:
    value: dict[str, Any] = record.__dict__["data"]
    return value


def lines(caplog: pytest.LogCaptureFixture, names: tuple[str, str], task_id: str) -> list[Any]:
    return [
        (r.name, r.levelno, r.getMessage().splitlines()[0], data(r)["args"], data(r)["kwargs"])
        for r in caplog.records
        if r.name in names and data(r)["id"] == task_id
    ]


async def test_a_hare_worker_logs_received_and_each_outcome_with_the_tasks_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    app = memory_app(clock, default_queue="q", result_backend="memory://")
    calls: list[int] = []

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.boom")
    def boom(x: int) -> int:
        raise ValueError(f"no {x}")

    @app.task(name="t.expected")
    def expected() -> None:
        raise KeyError("k")

    expected.throws = (KeyError,)

    @app.task(name="t.again", max_retries=1)
    def again() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise Retry(countdown=0)
        return 1

    async with running_worker(app):
        ok = await add.aapply_async((2, 2), {})
        failed = await boom.adelay(3)
        thrown = await expected.adelay()
        retried = await again.adelay()
        assert await ok.aget(timeout=5) == 4
        await eventually(lambda: len(lines(caplog, HARE, failed.id)) == 2)
        await eventually(lambda: len(lines(caplog, HARE, thrown.id)) == 2)
        await eventually(lambda: len(lines(caplog, HARE, retried.id)) == 4)

    received, ran = lines(caplog, HARE, ok.id)
    assert received == (
        "hare.worker.received",
        logging.INFO,
        f"Task t.add[{ok.id}] received",
        "(2, 2)",
        "{}",
    )
    assert ran[:2] == ("hare.trace", logging.INFO) and ran[3:] == ("(2, 2)", "{}")
    succeeded = ran[2]
    assert succeeded.startswith(f"Task t.add[{ok.id}] succeeded in ")
    assert succeeded.endswith("s: 4")
    assert lines(caplog, HARE, failed.id)[1] == (
        "hare.trace",
        logging.ERROR,
        f"Task t.boom[{failed.id}] raised unexpected: ValueError('no 3')",
        "(3,)",
        "{}",
    )
    record = next(
        r for r in caplog.records if r.name == "hare.trace" and data(r)["id"] == failed.id
    )
    assert record.exc_info is not None and record.exc_info[1] is not None
    assert "no 3" in data(record)["traceback"] and record.msg == tracelog.FAILURE
    assert lines(caplog, HARE, thrown.id)[1][:3] == (
        "hare.trace",
        logging.INFO,
        f"Task t.expected[{thrown.id}] raised expected: KeyError('k')",
    )
    due = datetime.fromtimestamp(clock.time(), UTC).isoformat(timespec="seconds")
    assert [line[2].split("]", 1)[1] for line in lines(caplog, HARE, retried.id)][:2] == [
        " received",
        f" retry: Retry 1/1 in 0s (at {due})",
    ]


async def test_a_hare_compat_worker_logs_on_celerys_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    app = Celery("proj", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "q"

    @app.task(name="t.mul", throws=(LookupError,))
    def mul(x: int, y: int) -> int:
        if x < 0:
            raise IndexError(x)
        return x * y

    app.finalize()
    hare = app.__hare_app__()
    async with running_worker(hare):
        ok = await mul.aapply_async((2, 3), argsrepr="CUSTOM ARGS", kwargsrepr="CUSTOM KWARGS")
        thrown = await mul.adelay(-1, 0)
        await eventually(lambda: len(lines(caplog, CELERY, ok.id)) == 2)
        await eventually(lambda: len(lines(caplog, CELERY, thrown.id)) == 2)

    got = lines(caplog, CELERY, ok.id)
    assert [(name, level, args, kwargs) for name, level, _, args, kwargs in got] == [
        ("celery.worker.strategy", logging.INFO, "CUSTOM ARGS", "CUSTOM KWARGS"),
        ("celery.app.trace", logging.INFO, "CUSTOM ARGS", "CUSTOM KWARGS"),
    ]
    assert lines(caplog, CELERY, thrown.id)[1][:3] == (
        "celery.app.trace",
        logging.INFO,
        f"Task t.mul[{thrown.id}] raised expected: IndexError(-1)",
    )
    assert not [r for r in caplog.records if r.name.startswith("hare.trace")]
