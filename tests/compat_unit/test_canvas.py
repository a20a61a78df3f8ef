"""hare_compat.canvas: Celery's canvas API builds Celery's dicts and sends Celery's messages.

Each canvas is built twice, with Celery 5.7 and with hare_compat, from the same recipe;
the signature dicts must be equal, and so must what applying them sends (modulo ids).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from celery import chain as c_chain
from celery import chord as c_chord
from celery import group as c_group
from celery import signature as c_signature

import hare_compat.canvas as h
import hare_compat.canvas_app as canvas_app_module
from hare.canvas import continuation as core
from hare.canvas.continuation import Env, Plan
from hare.errors import ConfigurationError
from hare_compat.canvas_result import GroupResult
from tests.canvas.test_canvas import (
    _celery_app_is_current,
    canon,
    celery_app,
    celery_sends,
    env,
    wire,
)

pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")
_ = _celery_app_is_current  # the fixture, used by name below


@dataclass
class Handle:
    """A result handle whose value is known (stands in for the app's AsyncResult)."""

    id: str
    value: Any = None
    done: bool = True
    gets: list[float | None] = field(default_factory=list)

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        self.gets.append(timeout)
        if isinstance(self.value, BaseException) and propagate:
            raise self.value
        return self.value

    def ready(self) -> bool:
        return self.done

    def successful(self) -> bool:
        return self.done and not isinstance(self.value, BaseException)

    def failed(self) -> bool:
        return self.done and isinstance(self.value, BaseException)


class EagerTask:
    """A registered task as far as eager `apply` needs one."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name, self.fn = name, fn
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def apply(self, args: Any, kwargs: Any, **options: Any) -> Handle:
        self.calls.append((tuple(args), dict(kwargs), options))
        return Handle(options.get("task_id", "eager"), self.fn(*args, **kwargs))


class FakeApp:
    """Satisfies `CanvasApp`: records the plans it is asked to publish."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self.tasks = {
            "t.add": EagerTask("t.add", lambda x, y=0: x + y),
            "t.tsum": EagerTask("t.tsum", sum),
        }

    def canvas_env(self) -> Env:
        return env()

    def publish_plan(self, plan: Plan) -> None:
        self.plans.append(plan)

    def AsyncResult(self, task_id: str) -> Handle:
        return Handle(task_id)

    def GroupResult(self, group_id: str, results: list[Any]) -> GroupResult:
        return GroupResult(group_id, results)


@pytest.fixture
def app() -> Iterator[FakeApp]:
    fake = FakeApp()
    h.set_default_app_resolver(lambda: cast(h.CanvasApp, fake))
    yield fake
    h.set_default_app_resolver(canvas_app_module._current_app)


class Side:
    """One canvas API (Celery's or hare_compat's) behind the same names."""

    def __init__(self, mod: Any, sig: Callable[..., Any]) -> None:
        self.chain, self.group, self.chord, self.sig = mod.chain, mod.group, mod.chord, sig

    def s(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.sig(name, args, kwargs)

    def si(self, name: str, *args: Any) -> Any:
        return self.sig(name, args, immutable=True)


class _Celery:
    chain, group, chord = c_chain, c_group, c_chord


CELERY = Side(_Celery, lambda name, *a, **k: c_signature(name, *a, app=celery_app, **k))
HARE = Side(h, h.signature)

RECIPES: dict[str, Callable[[Side], Any]] = {
    "task": lambda x: x.s("t.add", 1, 2),
    "set and link": lambda x: x.s("t.add", 1).set(priority=5, queue="q", link=x.s("t.tsum")),
    "on_error": lambda x: x.s("t.add", 1).on_error(x.s("t.err")),
    "a | b | c": lambda x: x.s("t.add", 1, 1) | x.s("t.add", 2) | x.si("t.add", 3, 3),
    "chain()": lambda x: x.chain(x.s("t.add", 1, 2), x.s("t.add", 3)),
    "chain(generator)": lambda x: x.chain(x.s("t.add", i) for i in range(3)),
    "chain of chains": lambda x: (
        (x.s("t.add", 1) | x.s("t.add", 2)) | (x.s("t.add", 3) | x.s("t.add", 4))
    ),
    "group": lambda x: x.group(x.s("t.add", 1, 1), x.s("t.add", 2, 2)),
    "group(list)": lambda x: x.group([x.s("t.add", 1, 1), x.s("t.add", 2, 2)]),
    "group | task": lambda x: x.group(x.s("t.add", 1), x.s("t.add", 2)) | x.s("t.tsum"),
    "task | group | task": lambda x: (
        x.s("t.add", 1, 1) | x.group(x.s("t.add", 1), x.s("t.add", 2)) | x.s("t.tsum")
    ),
    "one-task group unrolls": lambda x: x.s("t.add", 1, 1) | x.group(x.s("t.add", 1)),
    "chord": lambda x: x.chord([x.s("t.add", 1, 1), x.s("t.add", 2, 2)], x.s("t.tsum")),
    "chord(header)(body) shape": lambda x: x.chord(x.group(x.s("t.add", 1, 1)), x.s("t.tsum")),
    "chord | task": lambda x: x.chord([x.s("t.add", 1, 1)], x.s("t.tsum")) | x.s("t.add", 1),
    "chain | chord | task": lambda x: (
        (x.s("t.add", 1) | x.chord([x.s("t.add", 1), x.s("t.add", 2)], x.s("t.tsum")))
        | x.s("t.add", 7)
    ),
    "chain.on_error": lambda x: x.chain(x.s("t.add", 1), x.s("t.add", 2)).on_error(x.s("t.err")),
    "group.link_error": lambda x: _linked(x.group(x.s("t.add", 1), x.s("t.add", 2)), x),
    "chord.link_error": lambda x: x.chord([x.s("t.add", 1)], x.s("t.tsum")).on_error(x.s("t.err")),
    "group.link": lambda x: _link(x.group(x.s("t.add", 1), x.s("t.add", 2)), x),
}


def _linked(sig: Any, x: Side) -> Any:
    sig.link_error(x.s("t.err"))
    return sig


def _link(sig: Any, x: Side) -> Any:
    sig.link(x.s("t.tsum"))
    return sig


def shape(sig: Any) -> Any:
    return json.loads(json.dumps(sig))


@pytest.mark.parametrize("name", list(RECIPES))
def test_canvases_are_built_as_celery_builds_them(name: str, app: FakeApp) -> None:
    assert shape(RECIPES[name](HARE)) == shape(RECIPES[name](CELERY))


@pytest.mark.parametrize("name", [n for n in RECIPES if n != "one-task group unrolls"])
def test_applying_sends_what_celery_sends(name: str, app: FakeApp) -> None:
    messages, sizes = celery_sends(RECIPES[name](CELERY))
    RECIPES[name](HARE).apply_async()
    (plan,) = app.plans
    assert canon(wire(plan), list(plan.chord_sizes)) == canon(messages, sizes)


def test_a_chain_returns_the_last_tasks_result(app: FakeApp) -> None:
    result = (h.signature("t.add", (1, 2)) | h.signature("t.add", (3,))).delay()
    (plan,) = app.plans
    ((_, first),) = plan.publish
    last_id = first.embed.chain[0]["options"]["task_id"] if first.embed.chain else None
    assert result.id == last_id != first.id


def test_a_group_returns_a_group_result_in_order(app: FakeApp) -> None:
    result = h.group(h.signature("t.add", (i, i)) for i in range(3)).apply_async()
    (plan,) = app.plans
    assert isinstance(result, GroupResult)
    assert [r.id for r in result] == [m.id for _, m in plan.publish]
    assert {m.group for _, m in plan.publish} == {result.id}
    assert [m.group_index for _, m in plan.publish] == [0, 1, 2]


def test_chord_header_then_body_call(app: FakeApp) -> None:
    result = h.chord([h.signature("t.add", (1, 1)), h.signature("t.add", (2, 2))])(
        h.signature("t.tsum")
    )
    (plan,) = app.plans
    ((group_id, size),) = plan.chord_sizes
    assert size == 2
    assert [(m.embed.chord or {})["options"]["task_id"] for _, m in plan.publish] == [result.id] * 2
    assert {m.group for _, m in plan.publish} == {group_id}


def test_freeze_assigns_the_ids_sending_uses(app: FakeApp) -> None:
    sig = h.signature("t.add", (1, 2))
    frozen = sig.freeze()
    assert sig.id == frozen.id
    sig.delay()
    assert app.plans[0].publish[0][1].id == frozen.id
    workflow = h.chain(h.signature("t.add", (1,)), h.signature("t.add", (2,)))
    last = workflow.freeze()
    workflow.apply_async()
    chained = app.plans[1].publish[0][1].embed.chain or ()
    assert [step["options"]["task_id"] for step in chained] == [last.id]


def test_clone_set_and_immutable(app: FakeApp) -> None:
    base = h.signature("t.add", (1,), {"k": 1}, options={"queue": "a"})
    copy = base.clone((0,), {"j": 2}, priority=3)
    assert (copy.args, copy.kwargs) == ((0, 1), {"k": 1, "j": 2})
    assert copy.options == {"queue": "a", "priority": 3}
    assert base.options == {"queue": "a"}
    frozen = h.signature("t.add", (1,), immutable=True).clone((0,))
    assert frozen.args == (1,)
    assert base.set(countdown=3) is base and base.options["countdown"] == 3
    assert repr(h.signature("t.add", (1,), {"k": 2})) == "t.add(1, k=2)"
    one, two = h.signature("t.add", (1,)), h.signature("t.tsum")
    assert repr(one | two) == "t.add(1) | t.tsum()"
    assert repr(h.group(one, two)) == "group([t.add(1), t.tsum()])"
    assert repr(h.chord([one], two)) == "%t.tsum([t.add(1)])"


def test_eager_apply_runs_the_chain_here(app: FakeApp) -> None:
    result = (h.signature("t.add", (1, 2)) | h.signature("t.add", (10,))).apply()
    assert result.get() == 13
    assert [c[0] for c in app.tasks["t.add"].calls] == [(1, 2), (3, 10)]
    group_result = h.group(h.signature("t.add", (1, 1)), h.signature("t.add", (2, 2))).apply()
    assert group_result.get() == [2, 4]
    header = [h.signature("t.add", (1, 1)), h.signature("t.add", (2, 2))]
    total = h.chord(header, h.signature("t.tsum")).apply()
    assert total.get() == 6
    assert h.signature("t.add", (2, 3))() == 5


def test_signatures_round_trip_through_dicts(app: FakeApp) -> None:
    members = h.group(h.signature("t.add", (2,)), h.signature("t.add", (3,)))
    workflow: Any = h.signature("t.add", (1,)) | members
    rebuilt: Any = h.maybe_signature(json.loads(json.dumps(workflow)))
    assert type(rebuilt) is type(workflow)
    assert isinstance(rebuilt.tasks[1], h.group)
    assert shape(rebuilt) == shape(workflow)
    assert h.maybe_signature(None) is None


def test_group_result_collects_every_value(app: FakeApp) -> None:
    handles = [Handle("a", 1), Handle("b", 2, done=False), Handle("c", ValueError("x"))]
    result = GroupResult("g", handles)
    assert (result.ready(), result.completed_count(), result.failed()) == (False, 1, True)
    assert result.get(timeout=None, propagate=False)[:2] == [1, 2]
    with pytest.raises(ValueError, match="x"):
        result.get(timeout=5)
    assert all(t is not None and t <= 5 for t in handles[0].gets[1:])


def test_without_an_app_of_its_own_a_signature_uses_the_current_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeApp()
    import hare_compat._state as state

    monkeypatch.setattr(state, "get_current_app", lambda: fake)
    monkeypatch.setattr(canvas_app_module, "_resolve_default", canvas_app_module._current_app)
    h.signature("t.add", (1,)).delay()
    assert [m.task for plan in fake.plans for _, m in plan.publish] == ["t.add"]


def test_a_group_refuses_link_options(app: FakeApp) -> None:
    with pytest.raises(ConfigurationError, match="no link"):
        h.group(h.signature("t.add", (1,))).apply_async(link=h.signature("t.tsum"))
    assert core.Plan().publish == ()
