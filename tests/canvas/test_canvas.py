"""hare.canvas against Celery 5.7 itself: the same workflows must put the same messages on
the wire, modulo ids, whether a client starts them or a worker continues them.

The oracle is a real Celery app (memory broker, in-memory cache backend) whose outgoing
messages are captured at `amqp.send_task_message`, and whose worker side is Celery's own
tracer (`celery.app.trace.build_tracer`) fed the messages one by one.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery, chain, chord, group
from celery._state import get_current_app
from celery.app.trace import build_tracer

from hare.canvas import continuation as canvas
from hare.canvas.continuation import Env, Plan
from hare.core import protocol
from hare.core.codec import accepted_content_types
from hare.core.envelope import Properties
from hare.core.message import Embed, Message
from hare.errors import ChordError, ConfigurationError, NotSupportedError

# Celery warns that chord errbacks will also go onto the header some day; 5.7 does not yet.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")

celery_app = Celery("t", broker="memory://", backend="cache+memory://", set_as_current=False)


INLINE: list[tuple[Any, ...]] = []


def _add(x: int, y: int = 0) -> int:
    return x + y


def _tsum(xs: list[int]) -> int:
    return sum(xs)


def _err(task_id: str) -> None:
    """An old-style errback: gets the failed task's id."""


def _fail(*args: Any) -> None:
    raise ValueError("boom")


def _onerr(request: Any, exc: BaseException, traceback: Any, *extra: Any) -> None:
    """A new-style errback: Celery calls it in the worker with the request."""
    INLINE.append((request.id, repr(exc), extra))


add: Any = celery_app.task(name="t.add")(_add)
tsum: Any = celery_app.task(name="t.tsum")(_tsum)
err: Any = celery_app.task(name="t.err")(_err)
fail: Any = celery_app.task(name="t.fail")(_fail)
onerr: Any = celery_app.task(name="t.onerr")(_onerr)


@pytest.fixture(autouse=True)
def _celery_app_is_current() -> Iterator[None]:
    """Celery resolves the app of signatures rebuilt from dicts through `current_app`."""
    previous = get_current_app()
    celery_app.set_current()
    yield
    previous.set_current()


SENT: list[dict[str, Any]] = []
SIZES: list[tuple[str, int]] = []


def _capture(producer: Any, name: str, message: Any, **options: Any) -> None:
    headers, properties, body, _ = message
    queue = options.get("queue")
    SENT.append(
        {
            "headers": dict(headers),
            "props": dict(properties),
            "body": json.loads(json.dumps(body)),
            "queue": getattr(queue, "name", queue),
        }
    )


celery_app.amqp.send_task_message = _capture
celery_app.backend.set_chord_size = lambda group_id, size: SIZES.append((group_id, size))

ACCEPT = accepted_content_types(["json"])
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEADERS = (
    "task id group group_index root_id parent_id retries eta expires timelimit shadow"
    " ignore_result argsrepr kwargsrepr"
).split()


def env(**changes: Any) -> Env:
    base = Env(
        new_id=lambda: str(uuid.uuid4()),
        now=1_900_000_000.0,
        origin="gen1@test",
        reply_to=celery_app.thread_oid,
    )
    return replace(base, **changes)


def canon(messages: list[dict[str, Any]], sizes: list[Any]) -> Any:
    """Messages and chord sizes with every id replaced by its order of first appearance."""
    names: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, str) and UUID.match(value) and value != celery_app.thread_oid:
            return names.setdefault(value, f"<id{len(names)}>")
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    shown = [
        {
            "headers": {k: m["headers"].get(k) for k in HEADERS},
            "body": m["body"],
            "correlation_id": m["props"].get("correlation_id"),
            "reply_to": m["props"].get("reply_to"),
            "queue": m["queue"],
        }
        for m in messages
    ]
    return walk([shown, [list(s) for s in sizes]])


def wire(plan: Plan) -> list[dict[str, Any]]:
    """What hare publishes for `plan`, as the broker would see it."""
    out = []
    for queue, message in plan.publish:
        body, props = protocol.encode(message, now=1_900_000_000.0)
        props_shown = {"correlation_id": props.correlation_id, "reply_to": props.reply_to}
        out.append(
            {
                "headers": props.headers,
                "props": props_shown,
                "body": json.loads(body),
                # A None queue is routed by the app: Celery's default queue here.
                "queue": queue or "celery",
            }
        )
    return out


def as_dict(sig: Any) -> Any:
    """A signature as plain dicts, args kept as tuples (as a Celery client holds them)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: tuple(walk(v)) if k == "args" and isinstance(v, list) else walk(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(json.loads(json.dumps(sig)))


def celery_sends(sig: Any, *args: Any, **options: Any) -> Any:
    SENT.clear()
    SIZES.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sig.apply_async(args, **options)
    return list(SENT), list(SIZES)


CANVASES: dict[str, Callable[[], Any]] = {
    "task": lambda: add.s(1, 2),
    "link and link_error": lambda: add.s(1, 2).set(link=add.s(10), link_error=err.s()),
    "options": lambda: add.s(1, 2).set(
        queue="other", priority=5, shadow="s", time_limit=30, soft_time_limit=20
    ),
    "chain of three": lambda: chain(add.s(1, 2), add.s(3), add.si(4, 4)),
    "a | b | c": lambda: add.s(1, 1) | add.s(2) | add.s(3),
    "group": lambda: group(add.s(1, 1), add.s(2, 2)),
    "chord": lambda: chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
    "task | group | task": lambda: add.s(1, 1) | group(add.s(1), add.s(2)) | tsum.s(),
    "chain ending in a group": lambda: add.s(1, 1) | group(add.s(1), add.s(2)),
    "group of chains": lambda: group(add.s(1, 1) | add.s(2), add.s(3, 3) | add.s(4)),
    "chord with a chain body": lambda: chord([add.s(1, 1), add.s(2, 2)], tsum.s() | add.s(5)),
    "chain through a chord": lambda: (
        add.s(1, 1) | chord([add.s(1), add.s(2)], tsum.s()) | add.s(7) | add.s(8)
    ),
    "chord in a group": lambda: group(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(3, 3)),
    "chain on_error": lambda: chain(add.s(1, 2), add.s(3)).on_error(err.s()),
    "chain link": lambda: chain(add.s(1, 2), add.s(3)).set(link=err.si("x")),
    "chord of chains": lambda: chord([add.s(1, 1) | add.s(2), add.s(2, 2) | add.s(3)], tsum.s()),
    "chord in a chord header": lambda: chord(
        [chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(3, 3)], tsum.s()
    ),
    "a chain through a chord in a chord header": lambda: chain(
        add.si(1, 0),
        chord(
            [add.si(2, 0), chain(add.si(3, 0), chord([add.si(4, 0), add.si(5, 0)], tsum.s()))],
            tsum.s(),
        ),
    ),
    "empty chord": lambda: chord([], tsum.s()),
    "chord on_error": lambda: chord([add.s(1, 1)], tsum.s()).on_error(err.s()),
    "queues per task": lambda: chord([add.s(1).set(queue="a"), add.s(2)], tsum.s().set(queue="b")),
    "two callbacks": lambda: add.s(1, 2).set(link=[add.s(10), add.si(5, 5)]),
    "callbacks of every kind": lambda: add.s(1, 2).set(
        link=[group(add.s(10), add.s(5)), add.s(1), add.s(2) | add.s(3)]
    ),
    "a chord as callback": lambda: add.s(1, 2).set(link=chord([add.s(1), add.s(2)], tsum.s())),
    "a step with its own link": lambda: chain(add.s(1, 2).set(link=add.s(100)), add.s(3)),
    "starmap": lambda: add.starmap([[1, 1], [2, 2]]).set(link=add.s(5)),
    "map in a group": lambda: group(add.map([1, 2]), add.s(3, 3)),
    "chain into a starmap": lambda: chain(add.si(1, 1), add.starmap([(1, 1), (2, 2)])),
}


@pytest.mark.parametrize("name", list(CANVASES))
def test_a_client_sends_what_celery_sends(name: str) -> None:
    messages, sizes = celery_sends(CANVASES[name]())
    plan = canvas.apply(as_dict(CANVASES[name]()), env=env())
    assert canon(wire(plan), list(plan.chord_sizes)) == canon(messages, sizes)
    assert len(plan.publish) == len(messages) >= 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: chain(add.s(2), add.s(3)),
        lambda: group(add.s(2), add.si(3, 3)),
        lambda: chord([add.s(2), add.s(3)], tsum.s()),
    ],
    ids=["chain", "group", "chord"],
)
def test_partial_args_reach_the_same_tasks_as_celery(make: Callable[[], Any]) -> None:
    messages, sizes = celery_sends(make(), 1)
    plan = canvas.apply(as_dict(make()), (1,), env=env())
    assert canon(wire(plan), list(plan.chord_sizes)) == canon(messages, sizes)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("chain of three", {"queue": "q1", "priority": 3, "task_id": "1" * 8}),
        ("group", {"task_id": "fixed-group", "queue": "q2", "headers": {"x-a": 1}}),
        ("chord", {"task_id": "fixed-body", "link": err.s(), "link_error": err.s()}),
        ("chain of three", {"link": err.s(), "link_error": err.s(), "time_limit": 10}),
        ("chord of chains", {"queue": "q4", "shadow": "sh", "ignore_result": True}),
    ],
)
def test_apply_async_options_reach_the_same_tasks_as_celery(
    name: str, options: dict[str, Any]
) -> None:
    messages, sizes = celery_sends(CANVASES[name](), **options)
    plan = canvas.apply(as_dict(CANVASES[name]()), (), None, as_dict(options), env=env())
    assert canon(wire(plan), list(plan.chord_sizes)) == canon(messages, sizes)


def test_countdown_and_expires_are_absolute_from_env_now() -> None:
    sig = as_dict(add.s(1, 2).set(countdown=10, expires=60))
    (_, message), *_ = canvas.apply(sig, env=env(now=1_000.0)).publish
    assert message.eta == datetime.fromtimestamp(1_010.0, UTC)
    assert message.expires == datetime.fromtimestamp(1_060.0, UTC)


# -- the worker side ------------------------------------------------------------------------


def _request(m: dict[str, Any]) -> dict[str, Any]:
    args, kwargs, embed = m["body"]
    return {
        **m["headers"],
        "reply_to": m["props"].get("reply_to"),
        "correlation_id": m["props"]["correlation_id"],
        "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0},
        "hostname": "w@h",
        "args": args,
        "kwargs": kwargs,
        **embed,
    }


def celery_runs(m: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """Run Celery message `m` in Celery's tracer; what it sent after the task."""
    task = celery_app.tasks[m["headers"]["task"]]
    tracer = build_tracer(task.name, task, app=celery_app, eager=False, propagate=False)
    SENT.clear()
    SIZES.clear()
    INLINE.clear()
    args, kwargs, _ = m["body"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracer(m["headers"]["id"], args, kwargs, _request(m))
    return list(SENT), list(SIZES)


def decoded(m: dict[str, Any]) -> Message:
    props = Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=m["headers"],
        correlation_id=m["props"]["correlation_id"],
        reply_to=m["props"].get("reply_to"),
    )
    return protocol.decode(json.dumps(m["body"]).encode(), props, accept=ACCEPT)


def accepts_request(sig: Any) -> bool | None:
    task = celery_app.tasks.get(sig["task"])
    return None if task is None else canvas.errback_accepts_request(task.run, sig)


def hare_runs(message: Message, sizes: dict[str, int], parts: dict[str, dict[Any, Any]]) -> Plan:
    """What a hare worker publishes for `message`: after_success or after_failure, then the
    chord body once the part completes its chord."""
    task = celery_app.tasks[message.task]
    try:
        value = task.run(*message.args, **message.kwargs)
    except ValueError as exc:
        return canvas.after_failure(
            message, exc, "tb", request="REQ", env=env(), accepts_request=accepts_request
        )
    plan = canvas.after_success(message, value, env=env())
    sizes.update(plan.chord_sizes)
    part = canvas.chord_member(message)
    if part is None:
        return plan
    got = parts.setdefault(part.group_id, {})
    got[part.group_index] = value
    if len(got) < sizes[part.group_id]:
        return plan
    body = canvas.chord_body(part.body, [got[i] for i in sorted(got)], env=env(current=message))
    return Plan(
        publish=plan.publish + body.publish, chord_sizes=plan.chord_sizes + body.chord_sizes
    )


def walk(sig: Any) -> Iterator[tuple[Any, Any]]:
    """Every message of the workflow, run by Celery and by hare: their outputs, pairwise."""
    pending, first_sizes = celery_sends(sig())
    sizes = dict(first_sizes)
    parts: dict[str, dict[Any, Any]] = {}
    while pending:
        m = pending.pop(0)
        sent, celery_sizes = celery_runs(m)
        sizes.update(celery_sizes)
        plan = hare_runs(decoded(m), sizes, parts)
        yield canon(wire(plan), list(plan.chord_sizes)), canon(sent, celery_sizes)
        pending.extend(sent)


WORKFLOWS = [
    "link and link_error",
    "chain of three",
    "a | b | c",
    "task | group | task",
    "chain ending in a group",
    "group of chains",
    "chord",
    "chord with a chain body",
    "chain through a chord",
    "chord in a group",
    "chord of chains",
    "chord in a chord header",
    "a chain through a chord in a chord header",
    "chain link",
    "two callbacks",
    "callbacks of every kind",
    "a chord as callback",
    "a step with its own link",
    "chain into a starmap",
]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_a_worker_continues_a_workflow_as_celery_does(name: str) -> None:
    steps = list(walk(CANVASES[name]))
    for hare_side, celery_side in steps:
        assert hare_side == celery_side
    assert len(steps) >= 2


def test_old_style_errbacks_are_sent_as_a_group_with_the_failed_id() -> None:
    steps = list(walk(lambda: fail.s(1).set(link_error=[err.s(), err.si("fixed")])))
    assert steps[0][0] == steps[0][1]
    (hare_side, _), *_ = steps
    messages = hare_side[0]
    (failed_id,) = {m["headers"]["parent_id"] for m in messages}
    assert [m["body"][0] for m in messages] == [[failed_id], ["fixed"]]
    assert len({m["headers"]["group"] for m in messages}) == 1
    assert [m["headers"]["group_index"] for m in messages] == [0, 1]


def test_new_style_errbacks_are_called_inline_with_the_request() -> None:
    sig = fail.s(1).set(link_error=[onerr.s(), onerr.s(7), err.s()])
    (m,), _ = celery_sends(sig)
    sent, _ = celery_runs(m)
    celery_inline = list(INLINE)
    exc = ValueError("boom")
    plan = canvas.after_failure(
        decoded(m), exc, "tb", request="REQ", env=env(), accepts_request=accepts_request
    )
    assert [(c.task, c.args, dict(c.kwargs)) for c in plan.inline] == [
        ("t.onerr", ("REQ", exc, "tb"), {}),
        ("t.onerr", ("REQ", exc, "tb", 7), {}),
    ]
    assert [extra for _, _, extra in celery_inline] == [(), (7,)]
    assert canon(wire(plan), []) == canon(sent, [])
    assert [m["headers"]["task"] for m in sent] == ["t.err"]


def test_a_failed_step_fails_the_rest_of_its_chain() -> None:
    (m,), _ = celery_sends(chain(add.s(1, 2), fail.s(), add.s(3), tsum.s()))
    nxt, _ = celery_runs(m)
    failing = decoded(nxt[0])
    plan = canvas.after_failure(
        failing, ValueError("boom"), "tb", request=None, env=env(), accepts_request=accepts_request
    )
    chain_ids = [step["options"]["task_id"] for step in failing.embed.chain or ()]
    assert [step.task_id for step in plan.failed] == chain_ids
    assert len(chain_ids) == 2
    assert plan.publish == ()


# -- semantics, stated directly ---------------------------------------------------------------


def _sig(task: str, *args: Any, immutable: bool = False, **options: Any) -> dict[str, Any]:
    return {
        "task": task,
        "args": list(args),
        "kwargs": {},
        "options": options,
        "subtask_type": None,
        "immutable": immutable,
    }


def _message(**embed: Any) -> Message:
    return Message(id="m1", task="t.add", args=(1, 2), root_id="r1", embed=Embed(**embed))


def test_a_three_step_chain_runs_in_order_with_values_prepended() -> None:
    steps = (_sig("t.c", 9, task_id="c"), _sig("t.b", 5, immutable=True, task_id="b"))
    (queue, b), *rest = canvas.after_success(_message(chain=steps), 3, env=env()).publish
    assert rest == []
    assert queue is None
    assert (b.id, b.task, b.args, b.parent_id, b.root_id) == ("b", "t.b", (5,), "m1", "r1")
    assert [s["options"]["task_id"] for s in b.embed.chain or ()] == ["c"]
    ((_, c),) = canvas.after_success(b, 10, env=env()).publish
    assert (c.id, c.args, c.parent_id, c.root_id, c.embed.chain) == ("c", (10, 9), "b", "r1", ())
    assert canvas.after_success(c, 19, env=env()).publish == ()


def test_callbacks_and_the_next_chain_step_both_go_out() -> None:
    message = _message(
        callbacks=(_sig("t.log", queue="logs"),), chain=(_sig("t.next", task_id="n"),)
    )
    plan = canvas.after_success(message, "v", env=env())
    assert [(q, m.task, m.args) for q, m in plan.publish] == [
        ("logs", "t.log", ("v",)),
        (None, "t.next", ("v",)),
    ]
    assert plan.publish[0][1].group is None


def test_chord_member_says_which_chord_and_the_body_gets_results_in_order() -> None:
    body = _sig("t.tsum", task_id="body", group_id="g")
    message = replace(_message(chord=body), group="g", group_index=1)
    part = canvas.chord_member(message)
    assert part == canvas.ChordPart("g", 1, body, None)
    assert canvas.chord_member(_message()) is None
    ((_, call),) = canvas.chord_body(part.body, [2, 4], env=env(current=message)).publish
    assert (call.id, call.task, call.args, call.parent_id) == ("body", "t.tsum", ([2, 4],), "m1")


def test_a_failed_chord_calls_the_body_errbacks_and_fails_the_body() -> None:
    body = _sig("t.tsum", task_id="body", link_error=[_sig("t.err")])
    plan = canvas.chord_failed(
        body, RuntimeError("part"), env=env(), accepts_request=lambda s: False
    )
    ((_, call),) = plan.publish
    assert (call.task, call.args, call.parent_id) == ("t.err", ("body",), "body")
    assert [f.task_id for f in plan.failed] == ["body"]
    # Stored with the errbacks sent as its children (Celery: the running task's children).
    assert plan.failed[0].children == ([[call.group, None], [[[call.id, None], None]]],)


def test_a_failed_chord_s_inline_errbacks_get_a_request_standing_for_the_body() -> None:
    # Celery's chord_error_from_stack: a fake request with the body's id and errbacks.
    errback = _sig("t.onerr", "label")
    body = _sig("t.tsum", task_id="body", link_error=[errback])
    exc = RuntimeError("part")
    plan = canvas.chord_failed(body, exc, env=env(), accepts_request=lambda s: True)
    ((call,),) = (plan.inline,)
    request, got, traceback, *rest = call.args
    assert (call.task, got, traceback, rest) == ("t.onerr", exc, None, ["label"])
    assert (request.id, request.task, request.errbacks, request.delivery_info) == (
        "body",
        "t.tsum",
        [errback],
        {},
    )


def test_a_failed_chord_s_group_body_tasks_each_call_their_errbacks_with_the_cause() -> None:
    # Celery's _handle_group_chord_error: each task calls its own errbacks and the group's,
    # each once, with the ChordError's cause; it, the group and the chain after it fail.
    shared, own = _sig("t.onerr", "chord"), _sig("t.onerr", "own")
    first = _sig("t.tsum", task_id="b1", link_error=[own, shared])
    body = {
        **_sig("celery.group", task_id="g1", link_error=[shared]),
        "subtask_type": "group",
        "kwargs": {"tasks": [first, _sig("t.tsum", task_id="b2"), _sig("t.old", task_id="b3")]},
    }
    body["options"]["chain"] = [_sig("t.after", task_id="after")]
    cause = RuntimeError("part")
    exc = ChordError("Dependency p raised RuntimeError('part')")
    exc.__cause__ = cause
    plan = canvas.chord_failed(
        body, exc, env=env(), accepts_request=lambda s: s["task"] == "t.onerr"
    )
    inline = [(c.args[0].id, c.args[1], c.args[3:]) for c in plan.inline]
    assert inline == [
        ("b1", cause, ("own",)),
        ("b1", cause, ("chord",)),
        ("b2", cause, ("chord",)),
        ("b3", cause, ("chord",)),
    ]
    assert [(f.task_id, f.exc) for f in plan.failed] == [
        ("b1", cause),
        ("b2", cause),
        ("b3", cause),
        ("g1", cause),
        ("after", None),  # stored with the plan's failure, the ChordError
    ]
    assert plan.publish == ()


def test_signature_message_prepends_unless_immutable() -> None:
    parent = _message()
    _, m = canvas.signature_message(_sig("t.x", 1), env=env(), args_prefix=(0,), parent=parent)
    assert (m.args, m.parent_id, m.root_id) == ((0, 1), "m1", "r1")
    _, m = canvas.signature_message(_sig("t.x", 1, immutable=True), env=env(), args_prefix=(0,))
    assert m.args == (1,)
    with pytest.raises(ConfigurationError, match="use apply"):
        canvas.signature_message(as_dict(group(add.s(1))), env=env())


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"routing_key": "x"}, NotSupportedError),
        ({"exchange": "x"}, NotSupportedError),
        ({"compression": "zlib"}, NotSupportedError),
        ({"queue": "amq.bad"}, ConfigurationError),
        ({"priority": -1}, ConfigurationError),
        ({"time_limit": 0}, ConfigurationError),
        ({"eta": "tomorrow"}, ConfigurationError),
        ({"link": "t.x"}, ConfigurationError),
    ],
)
def test_options_hare_cannot_honour_are_refused(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        canvas.apply(_sig("t.x", **options), env=env())


def test_bad_signatures_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a signature"):
        canvas.apply({"args": []}, env=env())
    with pytest.raises(NotSupportedError, match="chunks"):
        canvas.apply({**_sig("celery.chunks"), "subtask_type": "chunks"}, env=env())
    with pytest.raises(ConfigurationError, match="no link"):
        canvas.apply(as_dict(group(add.s(1))), options={"link": _sig("t.x")}, env=env())
    with pytest.raises(ConfigurationError, match="empty chain"):
        canvas.freeze(as_dict(chain()), env=env())
    assert canvas.apply(as_dict(chain()), env=env()).publish == ()


def test_errback_arity_follows_celery() -> None:
    def three(request: Any, exc: Any, tb: Any) -> None: ...
    def one(task_id: str) -> None: ...
    def varargs(*args: Any) -> None: ...

    assert canvas.errback_accepts_request(three, _sig("t")) is True
    assert canvas.errback_accepts_request(varargs, _sig("t")) is True
    assert canvas.errback_accepts_request(one, _sig("t")) is False
    # Its own args fill parameters first: three(1, 2, ...) has one left, so it is old-style.
    assert canvas.errback_accepts_request(three, _sig("t", 1, 2)) is False
    assert canvas.errback_accepts_request(three, _sig("t", 1, 2, immutable=True)) is True


def test_the_input_signature_is_not_changed() -> None:
    sig = as_dict(chain(add.s(1), group(add.s(2), add.s(3)), tsum.s()))
    before = json.dumps(sig, sort_keys=True)
    plans = [canvas.apply(sig, env=env()) for _ in range(2)]
    assert json.dumps(sig, sort_keys=True) == before
    ids = [m.id for plan in plans for _, m in plan.publish]
    assert len(set(ids)) == len(ids) == 2
