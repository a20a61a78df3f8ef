"""A task that retries and runs out of retries logs and dead-letters the same way whichever
way it retried: hare's `Retry` or `autoretry_for`, or Celery's `self.retry` (with or without
`exc=`) or `autoretry_for` through hare_compat. Each retry is one INFO line saying which retry
of how many and when it runs; the last failure one ERROR line with its traceback saying the
retries are exhausted; the dead letter's reason is `retries-exhausted`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hare import Hare
from hare.core.envelope import Delivery
from hare.errors import Retry
from hare.testing import ManualClock, drain, eventually, memory_app, running_worker
from hare_compat.app.task import Task as CompatTask
from hare_compat.exceptions import MaxRetriesExceededError
from tests.compat_fake import FakeApp

pytestmark = pytest.mark.anyio

Send = Callable[[], Any]


def native(path: str, clock: ManualClock) -> tuple[Hare, Send, type[BaseException]]:
    app = memory_app(clock, default_queue="q", result_backend="memory://")
    if path == "native Retry":

        @app.task(name="t.flaky", max_retries=2)
        async def flaky() -> None:
            try:
                raise ValueError("nope")
            except ValueError as exc:
                raise Retry(countdown=5, exc=exc) from exc

    else:

        @app.task(name="t.flaky", max_retries=2, autoretry_for=(ValueError,), default_retry_delay=5)
        async def flaky() -> None:
            raise ValueError("nope")

    return app, flaky.adelay, ValueError


def compat(path: str, clock: ManualClock) -> tuple[Hare, Send, type[BaseException]]:
    app = FakeApp(memory_app(clock, default_queue="q", result_backend="memory://"))
    if path == "compat self.retry()":

        @app.task(name="t.flaky", bind=True, max_retries=2)
        async def flaky(self: CompatTask) -> None:
            raise self.retry(countdown=5)

    elif path == "compat self.retry(exc=)":

        @app.task(name="t.flaky", bind=True, max_retries=2)
        async def flaky(self: CompatTask) -> None:
            try:
                raise ValueError("nope")
            except ValueError as exc:
                raise self.retry(exc=exc, countdown=5) from exc

    else:

        @app.task(
            name="t.flaky",
            bind=True,
            max_retries=2,
            autoretry_for=(ValueError,),
            default_retry_delay=5,
        )
        async def flaky(self: CompatTask) -> None:
            raise ValueError("nope")

    app.finalize()
    raised = MaxRetriesExceededError if path == "compat self.retry()" else ValueError
    return app.hare, flaky.adelay, raised


PATHS = [
    "native Retry",
    "native autoretry_for",
    "compat self.retry()",
    "compat self.retry(exc=)",
    "compat autoretry_for",
]


async def dead_letters(app: Hare) -> list[Delivery]:
    transport = (await app.publisher()).transport
    await eventually(lambda: transport.message_count("q.dead"))
    return await drain(transport, "q.dead")


@pytest.mark.parametrize("path", PATHS)
async def test_retries_then_exhausted_log_and_dead_letter_alike(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    start = clock.time()
    build = native if path.startswith("native") else compat
    app, send, raised = build(path, clock)

    def trace() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "hare.trace"]

    async with running_worker(app):
        sent = await send()
        for n in (1, 2):
            await eventually(lambda n=n: len(trace()) == n)  # type: ignore[misc]
            await clock.advance_by(5)
        dead = await dead_letters(app)

    prefix = f"Task t.flaky[{sent.id}]"
    cause = "" if raised is MaxRetriesExceededError else ": ValueError('nope')"
    due = [datetime.fromtimestamp(start + 5 * n, UTC).isoformat() for n in (1, 2)]
    retry_one, retry_two, exhausted = trace()
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in (retry_one, retry_two)] == [
        (logging.INFO, f"{prefix} retry: Retry 1/2 in 5s (at {due[0]}){cause}", None),
        (logging.INFO, f"{prefix} retry: Retry 2/2 in 5s (at {due[1]}){cause}", None),
    ]
    assert retry_two.__dict__["data"]["retry"] == 2
    assert retry_two.__dict__["data"]["max_retries"] == 2

    message = exhausted.getMessage()
    assert exhausted.levelno == logging.ERROR
    assert message.startswith(f"{prefix} retries exhausted after 2 retries, raised unexpected: ")
    assert message.endswith(f"{raised.__name__}('nope')" if cause else 'kwargs:{}")')
    assert exhausted.exc_info is not None and exhausted.exc_info[0] is raised
    assert f"{raised.__name__}: " in exhausted.__dict__["data"]["traceback"]
    # One ERROR line for the whole story; the dead letter's own line is INFO.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [exhausted]
    assert [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()] == [
        f"message t.flaky[{sent.id}] from q dead-lettered: retries-exhausted ("
        + (str(exhausted.exc_info[1]) if exhausted.exc_info[1] is not None else "")
        + ")"
    ]

    [letter] = dead
    headers = letter.properties.headers
    assert headers["hare-dead-reason"] == "retries-exhausted"
    assert headers["hare-dead-attempts"] == 3
    assert str(headers["hare-dead-exception"]).endswith(raised.__name__)
    assert f"{raised.__name__}: " in str(headers["hare-dead-traceback"])


async def test_a_retry_at_an_eta_says_when_and_a_bare_retry_past_max_fails_with_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    start = clock.time()
    at = datetime.fromtimestamp(start + 100, UTC)
    app = memory_app(clock, default_queue="q", result_backend="memory://")

    @app.task(name="t.later", max_retries=1)
    async def later() -> None:
        raise Retry(eta=at)

    async with running_worker(app):
        sent = await later.adelay()
        await eventually(lambda: [r for r in caplog.records if r.name == "hare.trace"])
        await clock.advance_by(100)
        [letter] = await dead_letters(app)

    retry, exhausted = [r for r in caplog.records if r.name == "hare.trace"]
    assert retry.getMessage() == (
        f"Task t.later[{sent.id}] retry: Retry 1/1 at {at.isoformat()} (in 100s)"
    )
    assert (exhausted.levelno, exhausted.getMessage()) == (
        logging.ERROR,
        f"Task t.later[{sent.id}] retries exhausted after 1 retry, raised unexpected: "
        f"Retry('Retry at {at}')",
    )
    assert exhausted.exc_info is not None and exhausted.exc_info[0] is Retry
    assert letter.properties.headers["hare-dead-reason"] == "retries-exhausted"


async def test_unlimited_retries_name_no_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    app = memory_app(clock, default_queue="q", result_backend="memory://")
    runs: list[int] = []

    @app.task(name="t.forever", max_retries=None)
    async def forever() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise Retry(countdown=2.5)

    async with running_worker(app):
        sent = await forever.adelay()
        await eventually(lambda: runs)
        await clock.advance_by(2.5)
        await eventually(lambda: len(runs) == 2)

    due = datetime.fromtimestamp(clock.time(), UTC).isoformat(timespec="seconds")
    [retry] = [r for r in caplog.records if "retry:" in r.getMessage()]
    assert retry.getMessage() == f"Task t.forever[{sent.id}] retry: Retry 1 in 2.5s (at {due})"
