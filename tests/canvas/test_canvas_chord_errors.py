"""`hare.canvas.chord_failed` against Celery 5.7's `chord_error_from_stack`: when a chord's
header fails, the same results are stored as FAILURE, with the same exception, and the same
errbacks are called or sent.

The body is taken from a header message Celery's client sends; Celery's backend handles the
failure with its stores, revokes and errback calls captured (`tests.canvas.test_canvas`'s app).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import chord, group, signature
from celery.exceptions import ChordError as CeleryChordError

from hare.canvas import continuation as canvas
from hare.errors import ChordError
from tests.canvas.test_canvas import (
    INLINE,
    SENT,
    accepts_request,
    add,
    canon,
    celery_app,
    celery_sends,
    env,
    err,
    onerr,
    tsum,
    wire,
)

pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")

STORED: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def _capture_failures(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def mark_as_failure(task_id: str, exc: BaseException, *args: Any, **kwargs: Any) -> None:
        STORED.append((task_id, repr(exc)))

    monkeypatch.setattr(celery_app.backend, "mark_as_failure", mark_as_failure)
    monkeypatch.setattr(celery_app.control, "revoke", lambda *args, **kwargs: None)
    STORED.clear()
    yield


BODIES: dict[str, Callable[[], Any]] = {
    "a task": lambda: tsum.s().set(link_error=[onerr.s(), err.s()]),
    "a group": lambda: group(add.s(1), add.s(2)),
    "a group with errbacks on its tasks": lambda: group(
        tsum.s().set(link_error=onerr.s(1)), tsum.s().set(link_error=err.s())
    ),
    "a group with a chord in it": lambda: group(
        chord([add.si(2, 2)], tsum.s().set(link_error=onerr.s(2))), tsum.s()
    ),
}


@pytest.mark.parametrize("name", list(BODIES))
@pytest.mark.parametrize("how", ["as is", "link_error option"])
def test_a_failed_header_fails_the_body_as_celery_does(name: str, how: str) -> None:
    options = {"link_error": onerr.s(3)} if how == "link_error option" else {}
    messages, _ = celery_sends(chord([add.s(1, 1), add.s(2, 2)], BODIES[name]()), **options)
    body = messages[0]["body"][2]["chord"]
    cause = ValueError("boom")

    theirs = CeleryChordError("Dependency p raised ValueError('boom')")
    theirs.__cause__ = cause
    SENT.clear()
    INLINE.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raise theirs  # Celery stores the failure with the traceback being handled
        except CeleryChordError:
            celery_app.backend.chord_error_from_stack(signature(body, app=celery_app), theirs)
    celery_sent, celery_inline, celery_stored = list(SENT), list(INLINE), list(STORED)

    mine = ChordError("Dependency p raised ValueError('boom')")
    mine.__cause__ = cause
    plan = canvas.chord_failed(body, mine, env=env(), accepts_request=accepts_request)
    stored = [(step.task_id, repr(step.exc or mine)) for step in plan.failed]
    assert stored == celery_stored
    assert canon(wire(plan), []) == canon(celery_sent, [])
    assert [(repr(c.args[1]), c.args[3:]) for c in plan.inline] == [
        (exc, extra) for _, exc, extra in celery_inline
    ]
