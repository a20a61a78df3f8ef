"""Errbacks of hare_compat tasks on hare's worker: how each is called follows Celery 5.7's
rule (`Backend._call_task_errbacks`) on the *user's* function, not on hare's wrapper of it.

An errback whose function, after its signature's stored args and kwargs, takes more than one
positional argument is called in the worker with `(request, exc, traceback)`; any other
(one taking only the failed task's id, a bound task, a class-based task) is sent as a task
with the failed task's id as its first argument. On single tasks, groups and chords.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hare.testing import eventually, running_worker
from hare_compat import Celery, chain, chord, group
from hare_compat.app.task import Task

pytestmark = pytest.mark.anyio

#: (errback, failed task id, extra) for every errback call.
CALLS: list[tuple[str, str, Any]] = []


class ClassErrback(Task):
    name = "eb.class_based"

    def run(self, *args: Any) -> None:
        CALLS.append(("class_based", args[0], args[1:]))


def make_app() -> tuple[Celery, dict[str, Any]]:
    app = Celery("eb", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"

    @app.task(name="eb.fail")
    def fail(*args: Any) -> None:
        raise ValueError("expected")

    @app.task(name="eb.ok")
    def ok(x: int) -> int:
        return x

    @app.task(name="eb.tsum")
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    @app.task(name="eb.old")
    def old(task_id: str) -> None:
        CALLS.append(("old", task_id, None))

    @app.task(name="eb.old_with_args")
    def old_with_args(task_id: str, label: str) -> None:
        CALLS.append(("old_with_args", task_id, label))

    @app.task(name="eb.new")
    def new(request: Any, exc: BaseException, tb: Any) -> None:
        CALLS.append(("new", request.id, repr(exc)))

    @app.task(name="eb.new_with_args")
    def new_with_args(request: Any, exc: BaseException, tb: Any, label: str) -> None:
        CALLS.append(("new_with_args", request.id, label))

    @app.task(name="eb.bound", bind=True)
    def bound(self: Any, request: Any, exc: Any = None, tb: Any = None) -> None:
        # Celery's header of a bound task is a partial: always sent the failed task's id.
        CALLS.append(("bound", request, self.request.parent_id))

    app.register_task(ClassErrback)
    tasks: dict[str, Any] = dict(fail=fail, ok=ok, tsum=tsum, old=old, new=new)
    tasks.update(old_with_args=old_with_args)
    tasks.update(new_with_args=new_with_args, bound=bound, class_based=ClassErrback)
    return app, tasks


@pytest.fixture
async def running() -> AsyncIterator[dict[str, Any]]:
    CALLS.clear()
    app, tasks = make_app()
    hare = app.__hare_app__()
    async with running_worker(hare):
        yield tasks
    await hare.aclose()


async def _fails(sig: Any) -> str:
    result = await asyncio.to_thread(sig.apply_async)
    # (a chord's: ChordError("Dependency <id> raised ValueError('expected')"))
    with pytest.raises(Exception, match="expected"):
        await asyncio.to_thread(result.get, timeout=10)
    return str(result.id)


async def _called(*expected: tuple[str, str, Any]) -> None:
    await eventually(lambda: len(CALLS) >= len(expected))
    await asyncio.sleep(0.05)  # nothing more (a wrong call would be a second entry)
    assert sorted(CALLS, key=repr) == sorted(expected, key=repr)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda t: t["old"].s(), lambda i: ("old", i, None)),
        (lambda t: t["old_with_args"].s("stored"), lambda i: ("old_with_args", i, "stored")),
        (lambda t: t["old_with_args"].s(label="kw"), lambda i: ("old_with_args", i, "kw")),
        (lambda t: t["new"].s(), lambda i: ("new", i, "ValueError('expected')")),
        (lambda t: t["new_with_args"].s("stored"), lambda i: ("new_with_args", i, "stored")),
        (lambda t: t["new_with_args"].s(label="kw"), lambda i: ("new_with_args", i, "kw")),
        (lambda t: t["bound"].s(), lambda i: ("bound", i, i)),
        (lambda t: t["class_based"]().s("x"), lambda i: ("class_based", i, ("x",))),
    ],
    ids=["old", "old-args", "old-kwargs", "new", "new-args", "new-kwargs", "bound", "class"],
)
async def test_a_single_task_s_errback_is_called_as_celery_calls_it(
    running: dict[str, Any], make: Any, expected: Any
) -> None:
    sig = running["fail"].s()
    sig.link_error(make(running))
    task_id = await _fails(sig)
    await _called(expected(task_id))


def _group(t: dict[str, Any], errback: Any) -> tuple[Any, str]:
    """A group whose first task fails: its errback is called for that task."""
    failing = t["fail"].s()
    failed_id = failing.freeze().id
    sig = group(failing, t["ok"].si(42))
    sig.link_error(errback)
    return sig, failed_id


def _chord(t: dict[str, Any], errback: Any) -> tuple[Any, str]:
    """A chord whose header fails: Celery 5.7 puts a chord's errbacks on its body, so it
    is called once, for the body's id."""
    body = t["tsum"].s()
    body_id = body.freeze().id
    sig = chord([t["ok"].si(1), t["fail"].si()], body)
    sig.link_error(errback)
    return sig, body_id


@pytest.mark.parametrize(
    ("build", "style", "stored", "extra"),
    [
        (_group, "old", (), None),
        (_group, "new", (), "ValueError('expected')"),
        (_chord, "old_with_args", ("stored",), "stored"),
        (_chord, "new_with_args", ("stored",), "stored"),
    ],
    ids=["group-old", "group-new", "chord-old-args", "chord-new-args"],
)
async def test_a_group_s_and_a_chord_s_errbacks_are_called_as_celery_calls_them(
    running: dict[str, Any], build: Any, style: str, stored: tuple[str, ...], extra: Any
) -> None:
    sig, failed_id = build(running, running[style].s(*stored))
    await _fails(sig)
    await _called((style, failed_id, extra))


@pytest.mark.parametrize("style", ["old", "new"])
async def test_each_task_of_a_group_body_calls_the_errbacks_once_its_header_failed(
    running: dict[str, Any], style: str
) -> None:
    # Celery's _handle_group_chord_error: with the header's own failure, not a ChordError.
    first, second = running["tsum"].s(), running["tsum"].s()
    ids = [first.freeze().id, second.freeze().id]
    sig = chord([running["ok"].si(1), running["fail"].si()], group(first, second))
    sig.link_error(running[style].s())
    result = await asyncio.to_thread(sig.apply_async)
    with pytest.raises(ValueError, match="expected"):
        await asyncio.to_thread(result.get, timeout=10)
    extra = None if style == "old" else "ValueError('expected')"
    await _called(*((style, task_id, extra) for task_id in ids))


async def test_a_header_chain_that_fails_before_its_end_fails_the_chord(
    running: dict[str, Any],
) -> None:
    # Celery's _fail_chain: the chain's last step, the chord's header part, never runs but
    # counts as failed, so the body fails and its errback is called (it used to hang).
    body = running["tsum"].s()
    body_id = body.freeze().id
    header = chain(running["ok"].si(1), running["fail"].si(), running["ok"].si(2))
    sig = chord([header], body)
    sig.link_error(running["old"].s())
    await _fails(sig)
    await _called(("old", body_id, None))
