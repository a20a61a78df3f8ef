"""`self.retry` and `autoretry_for` on hare's worker: Celery 5.7's semantics, on a manual clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hare import signals
from hare.core.envelope import Delivery
from hare.errors import NotSupportedError
from hare.testing import ManualClock, drain, eventually, memory_app, running_worker
from hare_compat.app import autoretry
from hare_compat.app.autoretry import get_exponential_backoff_interval
from hare_compat.app.task import Task
from hare_compat.exceptions import MaxRetriesExceededError, Retry
from tests.compat_fake import FakeApp

pytestmark = pytest.mark.anyio


def make_app(clock: ManualClock) -> FakeApp:
    return FakeApp(memory_app(clock, default_queue="work", result_backend="memory://"))


async def dead_letters(app: FakeApp, count: int = 1) -> list[Delivery]:
    transport = (await app.hare.publisher()).transport
    await eventually(lambda: transport.message_count("work.dead"))
    dead = await drain(transport, "work.dead")
    assert len(dead) == count
    return dead


async def test_retrying_twice_then_succeeding_keeps_the_id_and_counts_retries() -> None:
    clock = ManualClock()
    app = make_app(clock)
    runs: list[tuple[int, float, str | None, str | None]] = []
    start = clock.time()

    @app.task(name="t.flaky", bind=True, max_retries=3)
    async def flaky(self: Task, x: int) -> int:
        r = self.request
        runs.append((r.retries, clock.time() - start, r.id, r.parent_id))
        if r.retries < 2:
            raise self.retry(countdown=10 * (r.retries + 1))
        return x * 2

    app.finalize()
    async with running_worker(app.hare):
        result = await flaky.aapply_async((21,))
        await eventually(lambda: len(runs) == 1)
        await clock.advance_by(10)
        await eventually(lambda: len(runs) == 2)
        await clock.advance_by(20)
        assert await result.aget(timeout=5) == 42
    assert [(n, when) for n, when, _, _ in runs] == [(0, 0), (1, 10), (2, 30)]
    assert {task_id for _, _, task_id, _ in runs} == {result.id}
    assert [parent for *_, parent in runs] == [None, result.id, result.id]


async def test_the_default_countdown_is_default_retry_delay_and_eta_is_honoured() -> None:
    clock = ManualClock()
    app = make_app(clock)
    runs: list[float] = []
    start = clock.time()
    at = datetime.fromtimestamp(start + 100, UTC)

    @app.task(name="t.later", bind=True, default_retry_delay=7)
    async def later(self: Task) -> None:
        runs.append(clock.time() - start)
        if self.request.retries == 0:
            raise self.retry()
        if self.request.retries == 1:
            raise self.retry(eta=at)

    app.finalize()
    async with running_worker(app.hare):
        await later.aapply_async()
        await eventually(lambda: len(runs) == 1)
        await clock.advance_by(6.9)
        assert len(runs) == 1
        await clock.advance_by(0.1)
        await eventually(lambda: len(runs) == 2)
        await clock.advance_by(93)
        await eventually(lambda: len(runs) == 3)
    assert runs == [0, 7, 100]


async def test_a_retry_given_both_countdown_and_eta_waits_the_countdown_as_celery() -> None:
    """Celery's retry sends both, and its client turns a countdown into the eta."""
    clock = ManualClock()
    app = make_app(clock)
    runs: list[float] = []
    start = clock.time()
    far = datetime.fromtimestamp(start + 500, UTC)

    @app.task(name="t.both", bind=True)
    async def both(self: Task) -> None:
        runs.append(clock.time() - start)
        if self.request.retries == 0:
            raise self.retry(countdown=20, eta=far)

    app.finalize()
    async with running_worker(app.hare):
        await both.aapply_async()
        await eventually(lambda: len(runs) == 1)
        await clock.advance_by(19.9)
        assert len(runs) == 1
        await clock.advance_by(0.1)
        await eventually(lambda: len(runs) == 2)
    assert runs == [0, 20]


async def test_past_max_retries_raises_max_retries_exceeded_or_the_given_exc() -> None:
    clock = ManualClock()
    app = make_app(clock)
    runs: list[str] = []

    @app.task(name="t.plain", bind=True, max_retries=1)
    async def plain(self: Task) -> None:
        runs.append(f"plain:{self.request.retries}")
        raise self.retry(countdown=1)

    @app.task(name="t.with_exc", bind=True, max_retries=5)
    async def with_exc(self: Task) -> None:
        runs.append(f"with_exc:{self.request.retries}")
        try:
            raise ConnectionError("partner down")
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=1, max_retries=1) from exc

    app.finalize()
    async with running_worker(app.hare):
        plain_result = await plain.aapply_async()
        exc_result = await with_exc.aapply_async()
        await eventually(lambda: len(runs) == 2)
        await clock.advance_by(1)
        with pytest.raises(MaxRetriesExceededError, match=r"Can't retry t.plain\["):
            await plain_result.aget(timeout=5)
        with pytest.raises(ConnectionError, match="partner down"):
            await exc_result.aget(timeout=5)
        dead = await dead_letters(app, 2)
    assert sorted(runs) == ["plain:0", "plain:1", "with_exc:0", "with_exc:1"]
    kinds = sorted(d.properties.headers["hare-dead-exception"] for d in dead)
    assert kinds == ["ConnectionError", "hare_compat.exceptions.MaxRetriesExceededError"]


async def test_retry_with_new_arguments_and_the_on_retry_hook_and_signal() -> None:
    clock = ManualClock()
    app = make_app(clock)
    calls: list[tuple[Any, ...]] = []
    hooks: list[str] = []

    class Hooked(Task):
        def on_retry(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            hooks.append(f"on_retry:{exc!r}:{args}:{kwargs}")

    @app.task(name="t.args", bind=True, base=Hooked)
    async def with_args(self: Task, x: int, y: int = 0) -> int:
        calls.append((self.request.retries, x, y))
        if self.request.retries == 0:
            raise self.retry(args=(10,), countdown=1, exc=KeyError("k"))
        if self.request.retries == 1:
            raise self.retry(kwargs={"y": 5}, countdown=1)
        return x + y

    def on_retry_signal(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
        hooks.append(f"signal:{request.id == result.id}")

    app.finalize()
    signals.task_retry.connect(on_retry_signal, sender=with_args)
    try:
        async with running_worker(app.hare):
            result = await with_args.aapply_async((1,), {"y": 2})
            await eventually(lambda: len(calls) == 1)
            await clock.advance_by(1)
            await eventually(lambda: len(calls) == 2)
            await clock.advance_by(1)
            assert await result.aget(timeout=5) == 15
    finally:
        signals.task_retry.disconnect(on_retry_signal, sender=with_args)
    # retry(args=) keeps the kwargs it does not now pass positionally (Celery's #6494 rule)
    assert calls == [(0, 1, 2), (1, 10, 2), (2, 10, 5)]
    assert hooks == [
        "on_retry:KeyError('k'):[1]:{'y': 2}",
        "signal:True",
        "on_retry:None:[10]:{'y': 2}",
        "signal:True",
    ]


def test_celerys_backoff_formula() -> None:
    assert [get_exponential_backoff_interval(1, n, 600) for n in range(11)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600,
    ]  # fmt: skip
    assert get_exponential_backoff_interval(3, 2, 600) == 12
    rng = random.Random(7)
    expected = random.Random(7).randrange(17)
    assert get_exponential_backoff_interval(1, 4, 600, full_jitter=True, rng=rng) == expected


@pytest.mark.parametrize("jitter", [False, True])
async def test_autoretry_for_backs_off_then_fails_with_the_original_exception(
    jitter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    app = make_app(clock)
    monkeypatch.setattr(autoretry, "jitter_rng", random.Random(11))
    expected_rng = random.Random(11)
    runs: list[float] = []
    start = clock.time()

    @app.task(
        name="t.partner",
        bind=True,
        autoretry_for=(ConnectionError,),
        retry_backoff=True,
        retry_jitter=jitter,
        max_retries=3,
    )
    async def partner(self: Task) -> None:
        runs.append(clock.time() - start)
        raise ConnectionError("partner down")

    delays = [2**n for n in range(3)]
    if jitter:
        delays = [expected_rng.randrange(d + 1) for d in delays]
    app.finalize()
    async with running_worker(app.hare):
        result = await partner.aapply_async()
        for n, delay in enumerate(delays, start=1):
            await eventually(lambda n=n: len(runs) == n)  # type: ignore[misc]
            await clock.advance_by(delay)
        with pytest.raises(ConnectionError):
            await result.aget(timeout=5)
        dead = await dead_letters(app)
    assert runs == [sum(delays[:n]) for n in range(4)]
    assert dead[0].properties.headers["hare-dead-exception"] == "ConnectionError"
    assert dead[0].properties.headers["retries"] == 3


async def test_dont_autoretry_for_and_retry_kwargs() -> None:
    clock = ManualClock()
    app = make_app(clock)
    runs: list[str] = []

    @app.task(
        name="t.picky",
        autoretry_for=(OSError,),
        dont_autoretry_for=(FileNotFoundError,),
        retry_kwargs={"countdown": 4, "max_retries": 1},
    )
    async def picky(kind: str) -> None:
        runs.append(kind)
        raise FileNotFoundError("gone") if kind == "missing" else OSError("flaky")

    app.finalize()
    async with running_worker(app.hare):
        missing = await picky.aapply_async(("missing",))
        flaky = await picky.aapply_async(("flaky",))
        with pytest.raises(FileNotFoundError):
            await missing.aget(timeout=5)
        await eventually(lambda: runs.count("flaky") == 1)
        await clock.advance_by(3.9)
        assert runs.count("flaky") == 1
        await clock.advance_by(0.1)
        with pytest.raises(OSError, match="flaky"):
            await flaky.aget(timeout=5)
    assert runs.count("missing") == 1 and runs.count("flaky") == 2


def test_retry_called_directly_reraises() -> None:
    app = make_app(ManualClock())

    @app.task(name="t.direct", bind=True)
    def direct(self: Task, fail_with: str) -> None:
        if fail_with == "exc":
            try:
                raise ValueError("original")
            except ValueError:
                raise self.retry(exc=KeyError("given")) from None
        raise self.retry()

    with pytest.raises(KeyError, match="given") as info:
        direct("exc")
    assert isinstance(info.value.__context__, ValueError)
    with pytest.raises(Retry, match="Task can be retried"):
        direct("plain")


async def test_retry_options_hare_cannot_honour_fail_the_task() -> None:
    clock = ManualClock()
    app = make_app(clock)

    @app.task(name="t.no_throw", bind=True)
    async def no_throw(self: Task) -> None:
        self.retry(throw=False)

    @app.task(name="t.compressed", bind=True)
    async def compressed(self: Task) -> None:
        raise self.retry(priority=3)

    app.finalize()
    async with running_worker(app.hare):
        first = await no_throw.aapply_async()
        second = await compressed.aapply_async()
        with pytest.raises(NotSupportedError, match="throw=False"):
            await first.aget(timeout=5)
        with pytest.raises(NotSupportedError, match="priority"):
            await second.aget(timeout=5)


async def test_a_retry_goes_to_the_queue_and_expires_it_names() -> None:
    clock = ManualClock()
    app = make_app(clock)
    seen: list[tuple[int, str | None, Any]] = []

    @app.task(name="t.elsewhere", bind=True)
    async def elsewhere(self: Task, where: str | None, expires: Any) -> int:
        request = self.request
        seen.append((request.retries, request.delivery_info["routing_key"], request.expires))
        if not request.retries:
            raise self.retry(countdown=0, queue=where, expires=expires)
        return request.retries

    app.finalize()
    start = clock.time()
    async with running_worker(app.hare, queues=["work", "other"]):
        moved = await elsewhere.aapply_async(("other", 60))
        assert await moved.aget(timeout=5) == 1
        stays = await elsewhere.aapply_async((None, None))
        assert await stays.aget(timeout=5) == 1
    (_, q0, e0), (_, q1, e1), (_, q2, e2), (_, q3, e3) = seen
    assert (q0, q1, q2, q3) == ("work", "other", "work", "work")
    assert e0 is None and e2 is None and e3 is None
    assert e1 is not None and abs(datetime.fromisoformat(e1).timestamp() - (start + 60)) < 1


async def test_a_retry_raised_by_hand_runs_again_after_default_retry_delay() -> None:
    clock = ManualClock()
    app = make_app(clock)
    runs: list[float] = []
    start = clock.time()

    @app.task(name="t.by_hand", bind=True, default_retry_delay=30)
    async def by_hand(self: Task) -> None:
        runs.append(clock.time() - start)
        if self.request.retries == 0:
            raise Retry()
        if self.request.retries == 1:
            raise Retry(when=timedelta(seconds=5).total_seconds())

    app.finalize()
    async with running_worker(app.hare):
        await by_hand.aapply_async()
        await eventually(lambda: len(runs) == 1)
        await clock.advance_by(30)
        await eventually(lambda: len(runs) == 2)
        await clock.advance_by(5)
        await eventually(lambda: len(runs) == 3)
    assert runs == [0, 30, 35]
