"""A naive time (a datetime without tzinfo) given to a call or a retry is read as UTC, as
Celery 5.7 reads it whatever the app's `timezone`, and said once per process and option on
the `hare` logger, with how to give an aware one. On a fixed clock: nothing sleeps."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hare.core import values
from hare.core.calls import Env, build_message
from hare.core.message import Message
from hare.core.outcome import RetryRequested, outcome_of
from hare.errors import Retry
from hare.publisher import Publisher
from hare.testing import ManualClock, eventually, memory_app, running_worker
from hare_compat import Celery
from hare_compat.app.task import Task as CompatTask
from tests.compat_fake import FakeApp

NOW = 1_900_000_000.0
#: 2030-03-01 12:00, without a zone: 12:00 UTC for hare and Celery, 13:00 in Berlin.
NAIVE = datetime(2030, 3, 1, 12, 0)
AS_UTC = NAIVE.replace(tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: nothing said yet."""
    monkeypatch.setattr(values, "_said", set())


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hare" and r.levelno == logging.WARNING and "no timezone" in r.getMessage()
    ]


def env() -> Env:
    return Env(new_id=lambda: str(uuid.uuid4()), now=NOW, origin=None)


def test_a_naive_eta_is_utc_and_said_once_per_option(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _, message = build_message("t", (), {}, {"eta": NAIVE}, env())
    assert message.eta == AS_UTC
    [line] = said(caplog)
    assert line.startswith(
        "eta= was given 2030-03-01T12:00:00, which has no timezone: hare reads it as UTC"
    )
    assert "datetime.now(timezone.utc) + timedelta(hours=1)" in line
    assert 'tzinfo=ZoneInfo("Europe/Berlin")' in line
    # Once per process: a second naive eta (an ISO string too) says nothing more.
    _, again = build_message("t", (), {}, {"eta": NAIVE.isoformat()}, env())
    assert again.eta == AS_UTC and len(said(caplog)) == 1
    # Aware and relative times say nothing; a naive expires= is said of expires=.
    berlin = NAIVE.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    _, aware = build_message("t", (), {}, {"eta": berlin, "expires": 60}, env())
    assert aware.eta == AS_UTC - timedelta(hours=1) and len(said(caplog)) == 1
    _, expiring = build_message("t", (), {}, {"expires": NAIVE}, env())
    assert expiring.expires == AS_UTC
    assert said(caplog)[1].startswith("expires= was given 2030-03-01T12:00:00, which")


def test_a_retry_at_a_naive_eta_is_utc_and_said(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    outcome = outcome_of(Retry(eta=NAIVE), "")
    assert isinstance(outcome, RetryRequested) and outcome.eta == AS_UTC
    assert said(caplog)[0].startswith("Retry(eta=) was given 2030-03-01T12:00:00, which")


@pytest.mark.anyio
async def test_a_task_with_a_naive_eta_runs_at_that_time_in_utc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(NOW)
    app = memory_app(clock, default_queue="q")
    runs: list[float] = []

    @app.task(name="t.later")
    async def later() -> None:
        runs.append(clock.time())

    # What `datetime.utcnow() + timedelta(hours=1)` gives: an hour from now, read as UTC.
    naive = datetime.fromtimestamp(NOW, UTC).replace(tzinfo=None) + timedelta(hours=1)
    async with running_worker(app):
        await later.aapply_async(eta=naive)
        await clock.advance_by(3599)
        assert runs == []
        await clock.advance_by(1)
        await eventually(lambda: runs)
    assert runs == [NOW + 3600]
    assert said(caplog)[0].startswith(f"eta= was given {naive.isoformat()}")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Message]]:
    got: list[Message] = []

    async def capture(self: Publisher, queue: str, message: Message, **_: Any) -> None:
        got.append(message)

    monkeypatch.setattr(Publisher, "send", capture)
    yield got


def celery_reads(eta: datetime, timezone: str) -> tuple[datetime, datetime]:
    """When Celery 5.7's worker has a message run and expire that Celery's client sent with
    `eta=eta, expires=eta`, its app's `timezone` set to `timezone`."""
    from celery import Celery as RealCelery
    from celery.worker.request import Request
    from kombu.message import Message as KombuMessage
    from kombu.utils.json import dumps

    app = RealCelery("real", broker="memory://", set_as_current=False)
    app.conf.timezone = timezone

    def run() -> None: ...

    echo = app.task(name="t.echo")(run)
    sent = app.amqp.as_task_v2("id", "t.echo", eta=eta, expires=eta)
    received = KombuMessage(  # type: ignore[no-untyped-call]
        body=dumps(sent.body),  # type: ignore[no-untyped-call]
        headers=sent.headers,
        content_type="application/json",
        content_encoding="utf-8",
    )
    request = Request(received, app=app, task=echo)
    return request.eta, request.expires


def test_hare_compat_reads_a_naive_eta_as_celery_does_whatever_the_timezone(
    sent: list[Message], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = Celery("tz", broker="memory://", set_as_current=False)
    app.conf.timezone = "Europe/Berlin"
    app.hare.clock = ManualClock(NOW)

    @app.task(name="t.echo", shared=False)
    def echo() -> None: ...

    try:
        echo.apply_async(eta=NAIVE, expires=NAIVE + timedelta(hours=1))
    finally:
        app.close()
    [message] = sent
    assert (message.eta, message.expires) == (AS_UTC, AS_UTC + timedelta(hours=1))
    celery_eta, celery_expires = celery_reads(NAIVE, "Europe/Berlin")
    assert celery_eta == message.eta and celery_expires == AS_UTC  # the same instants
    assert [line.split(" was given")[0] for line in said(caplog)] == ["eta=", "expires="]


@pytest.mark.anyio
async def test_hare_compat_self_retry_at_a_naive_eta_runs_at_that_time_in_utc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock(NOW)
    app = FakeApp(memory_app(clock, default_queue="q"))
    runs: list[float] = []
    naive = datetime.fromtimestamp(NOW + 100, UTC).replace(tzinfo=None)

    @app.task(name="t.again", bind=True)
    async def again(self: CompatTask) -> None:
        runs.append(clock.time())
        if len(runs) == 1:
            raise self.retry(eta=naive)

    app.finalize()
    async with running_worker(app.hare):
        await again.aapply_async()
        await eventually(lambda: runs)
        await clock.advance_by(99)
        assert len(runs) == 1
        await clock.advance_by(1)
        await eventually(lambda: len(runs) == 2)
    assert runs == [NOW, NOW + 100]
    assert said(caplog)[0].startswith(f"self.retry(eta=) was given {naive.isoformat()}")
