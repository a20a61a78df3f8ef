"""`Plan.parents`: the `AsyncResult.parent` links a client's result gets, as Celery's.

Each canvas is applied by Celery (messages captured, no broker) and by `hare.canvas.apply`;
the result's tree of parents, with ids named by their first appearance in the messages,
must be the same.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from hare.canvas import continuation as canvas
from hare.canvas.continuation import GroupRef, Plan, Ref
from tests.canvas.test_canvas import CANVASES, SENT, SIZES, as_dict, canon, env, wire


def _celery_tree(result: Any) -> Any:
    if result is None:
        return None
    members = [_celery_tree(r) for r in getattr(result, "results", None) or ()]
    return {"id": result.id, "members": members, "parent": _celery_tree(result.parent)}


def _hare_tree(ref: Ref | None, parents: dict[str, Ref]) -> Any:
    if ref is None:
        return None
    key = ref.id if isinstance(ref, GroupRef) else ref
    members = [_hare_tree(r, parents) for r in ref.results] if isinstance(ref, GroupRef) else []
    return {"id": key, "members": members, "parent": _hare_tree(parents.get(key), parents)}


def _celery(name: str) -> tuple[list[dict[str, Any]], Any]:
    SENT.clear()
    SIZES.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CANVASES[name]().apply_async()
    return list(SENT), _celery_tree(result)


@pytest.mark.parametrize("name", list(CANVASES))
def test_the_result_has_celerys_parents(name: str) -> None:
    messages, tree = _celery(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sig = as_dict(CANVASES[name]())
    plan: Plan = canvas.apply(sig, env=env())
    mine = _hare_tree(plan.result, dict(plan.parents))
    # The tree rides in canon's second list so its ids get the messages' names.
    assert canon(wire(plan), [(mine,)]) == canon(messages, [(tree,)])


def test_a_chain_of_three_links_each_step_to_the_one_before() -> None:
    plan = canvas.apply(as_dict(CANVASES["chain of three"]()), env=env())
    (first,) = [message.id for _, message in plan.publish]  # the others ride in its chain
    last = plan.result
    assert isinstance(last, str)
    parents = dict(plan.parents)
    middle = parents[last]
    assert isinstance(middle, str) and parents[middle] == first
    assert first not in parents and len({first, middle, last}) == 3
