"""`Plan.chord_headers`: the chord headers Celery's Redis backend saves (`apply_chord`), so
that a body gets its header's values in their shape (a chain ending in a group gives a
list, not its values spread among the others').

Celery saves a header whose results include a group; hare's plan must list the same ones,
with the same results, whether a client applies the chord or a worker continues into it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import chain, chord, group
from celery.result import GroupResult

from hare.canvas import continuation as canvas
from hare.canvas.continuation import GroupRef, Ref
from tests.canvas.test_canvas import (
    add,
    as_dict,
    canon,
    celery_app,
    celery_runs,
    celery_sends,
    decoded,
    env,
    tsum,
    wire,
)

SAVED: list[Any] = []


def _tree(result: Any) -> Any:
    if isinstance(result, GroupResult):
        return [result.id, [_tree(r) for r in result.results]]
    return result.id


def _hare_tree(ref: Ref) -> Any:
    return [ref.id, [_hare_tree(r) for r in ref.results]] if isinstance(ref, GroupRef) else ref


@pytest.fixture(autouse=True)
def _capture_saved_headers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Celery's Redis `apply_chord`: it saves a header with a group among its results."""

    def apply_chord(header_result_args: Any, body: Any, **kwargs: Any) -> None:
        header = GroupResult(*header_result_args, app=celery_app)
        if any(isinstance(r, GroupResult) for r in header.results):
            SAVED.append(_tree(header))

    monkeypatch.setattr(celery_app.backend, "apply_chord", apply_chord)
    SAVED.clear()
    yield


CHORDS: dict[str, Callable[[], Any]] = {
    "a chain ending in a group": lambda: chord(
        group(chain(add.s(42, 0), group(add.s(1), add.s(2)))), tsum.s()
    ),
    "a group, a chain ending in a group and a task": lambda: chord(
        [
            group(add.s(1, 1), add.s(2, 2)),
            chain(add.s(3, 3), group(add.s(1), add.s(2))),
            add.s(4, 4),
        ],
        tsum.s(),
    ),
    "tasks only": lambda: chord([add.s(1, 1), chain(add.s(2, 2), add.s(3))], tsum.s()),
}


@pytest.mark.parametrize("name", list(CHORDS))
def test_a_client_saves_the_headers_celery_saves(name: str) -> None:
    messages, sizes = celery_sends(CHORDS[name]())
    plan = canvas.apply(as_dict(CHORDS[name]()), env=env())
    mine = [_hare_tree(header) for header in plan.chord_headers]
    assert canon(wire(plan), [mine]) == canon(messages, [list(SAVED)])
    assert (len(mine) == 1) is (name != "tasks only")


def test_a_worker_saves_the_header_of_a_chord_it_continues_into() -> None:
    workflow = chain(add.s(1, 1), chord([chain(add.s(1), group(add.s(1), add.s(2)))], tsum.s()))
    (first,), _ = celery_sends(workflow)
    sent, sizes = celery_runs(first)
    plan = canvas.after_success(decoded(first), 2, env=env())
    mine = [_hare_tree(header) for header in plan.chord_headers]
    assert canon(wire(plan), [mine]) == canon(sent, [list(SAVED)])
    assert len(mine) == 1


def test_a_copy_of_a_step_continues_into_the_same_chord_header_as_celery() -> None:
    """A step before a chord delivered twice (a broker's or producer's copy) and run twice,
    on two workers: both runs send the chord's header under the one group id the client
    froze, as Celery's do (Celery's test_chord_header_id_duplicated_on_rabbitmq_msg_
    duplication)."""
    (first,), _ = celery_sends(chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s())))
    celery_groups = {m["headers"]["group"] for _ in range(2) for m in celery_runs(first)[0]}
    hare_groups = {
        message.group
        for _ in range(2)
        for _, message in canvas.after_success(decoded(first), 2, env=env()).publish
    }
    assert hare_groups == celery_groups and len(hare_groups) == 1
