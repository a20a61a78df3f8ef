"""One path from a call to its message (`hare.core.calls`), whichever API makes the call.

The same Celery options go through every entry point: hare's `Task.apply_async` and
`Hare.send_task`, a signature applied by the canvas planner, and hare_compat's
`task.apply_async` and `signature.apply_async`. Each must put the same message on the same
queue, or raise the same error; only the id and the time they inject may differ, and the
tests fix both. The messages are caught where every path ends, at `Publisher.deliver`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hare import Hare
from hare.canvas import continuation as canvas
from hare.context import TaskContext, running
from hare.core.calls import Env, build_message
from hare.core.message import Embed, Message
from hare.core.priority import InvalidPriority
from hare.errors import ConfigurationError, DelayTooLong, NotSupportedError
from hare.publisher import Publisher
from hare.testing.clock import ManualClock
from hare_compat import Celery
from tests.properties import examples

NOW = 1_900_000_000.0
NAME = "t.echo"
ARGS = (1, "two")
KWARGS = {"k": [3]}
LINK: dict[str, Any] = {
    "task": "t.next",
    "args": [],
    "kwargs": {},
    "options": {},
    "subtask_type": None,
}
AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Apps:
    """A hare app and a hare_compat app, with `NAME` registered on each."""

    native: Hare
    compat: Celery
    native_task: Any
    compat_task: Any

    def close(self) -> None:
        self.native.close()
        self.compat.close()


def make_apps(**accept: Any) -> Apps:
    clock = ManualClock(NOW)
    # The queue compat's routes pick when a call names none: Celery's default.
    native = Hare(
        "calls", broker="memory://", clock=clock, environ={}, default_queue="celery", **accept
    )
    compat = Celery("calls", broker="memory://", set_as_current=False, **accept)
    compat.hare.clock = ManualClock(NOW)

    def echo(*args: Any, **kwargs: Any) -> None: ...

    native_task = native.task(name=NAME)(echo)
    compat_task = compat.task(name=NAME, shared=False)(echo)
    return Apps(native, compat, native_task, compat_task)


SENT: list[tuple[str, Message]] = []


async def _capture(self: Publisher, queue: str, message: Message, **_: Any) -> None:
    SENT.append((queue, message))


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Apps]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Publisher, "deliver", _capture)
        made = {
            "pickle": make_apps(accept_content=["json", "pickle"]),
            "json": make_apps(),
        }
        yield made
        for pair in made.values():
            pair.close()


def _signature(options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "task": NAME,
        "args": ARGS,
        "kwargs": dict(KWARGS),
        "options": dict(options or {}),
        "subtask_type": None,
        "immutable": False,
    }


#: Every way of sending, each given the same options.
ENTRY_POINTS: dict[str, Callable[[Apps, dict[str, Any]], Any]] = {
    "hare Task.apply_async": lambda a, o: a.native_task.apply_async(ARGS, KWARGS, **o),
    "hare send_task": lambda a, o: a.native.send_task(NAME, ARGS, KWARGS, **o),
    "hare canvas": lambda a, o: a.native.send_plan(
        canvas.apply(_signature(), options=o, env=a.native.call_env())
    ),
    "compat task.apply_async": lambda a, o: a.compat_task.apply_async(ARGS, KWARGS, **o),
    "compat signature.apply_async": lambda a, o: a.compat.signature(
        NAME, args=ARGS, kwargs=dict(KWARGS)
    ).apply_async(**o),
}


def outcome(call: Callable[[], Any]) -> Any:
    """What one entry point did: the queue and the message (id and time fixed), or the
    class of the error it raised."""
    SENT.clear()
    try:
        call()
    except (ConfigurationError, TypeError, DelayTooLong) as exc:
        assert not SENT
        return type(exc)
    ((queue, message),) = SENT
    same_id = message.root_id == message.id
    message = replace(message, id="<id>", correlation_id="<id>")
    return queue, replace(message, root_id="<id>") if same_id else message


def outcomes(apps: Apps, options: dict[str, Any]) -> dict[str, Any]:
    return {
        name: outcome(partial(send, apps, dict(options))) for name, send in ENTRY_POINTS.items()
    }


def one_outcome(apps: Apps, options: dict[str, Any]) -> Any:
    """The outcome every entry point shares (the test fails if they differ)."""
    found = outcomes(apps, options)
    first = next(iter(found.values()))
    differ = {name: each for name, each in found.items() if each != first}
    assert not differ, (first, differ)
    return first


# -- the table: the rules that used to differ, decided once ---------------------------------

STAMPED = {"stamped_headers": ["owner"], "stamps": {"owner": "ann"}}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # Given both, nothing is dropped silently: an error naming both.
        ({"countdown": 10, "eta": AT}, ConfigurationError),
        ({"countdown": 10}, {"eta": datetime.fromtimestamp(NOW + 10, UTC)}),
        ({"countdown": 0}, {"eta": None}),  # Celery: a zero countdown is no delay
        ({"eta": AT.replace(tzinfo=None).isoformat()}, {"eta": AT}),  # naive: UTC
        ({"expires": timedelta(minutes=1)}, {"expires": datetime.fromtimestamp(NOW + 60, UTC)}),
        # Stamps as Celery's client sends them, or as one mapping.
        ({"stamped_headers": ["owner"], "owner": "ann"}, {"headers": STAMPED}),
        ({"stamps": {"owner": "ann"}}, {"headers": STAMPED}),
        ({"stamped_headers": ["owner"]}, ConfigurationError),  # a stamp without a value
        ({"retries": 2}, {"retries": 2}),
        ({"replaced_task_nesting": 2}, {"headers": {"replaced_task_nesting": 2}}),
        ({"serializer": "pickle"}, {"content_type": "application/x-python-serialize"}),
        ({"serializer": "yaml"}, NotSupportedError),  # a serializer hare does not have
        ({"exchange": "elsewhere"}, NotSupportedError),
        ({"compression": "zlib"}, NotSupportedError),
        ({"priority": -1}, InvalidPriority),
        ({"priority": 10}, InvalidPriority),
        ({"time_limit": 0}, ConfigurationError),
        ({"eta": "tomorrow"}, ConfigurationError),
        ({"link": "t.next"}, ConfigurationError),
        ({"link": LINK, "ignore_result": True}, {"embed": Embed(callbacks=(LINK,))}),
    ],
)
def test_every_entry_point_applies_the_same_rules(
    apps: dict[str, Apps], options: dict[str, Any], expected: Any
) -> None:
    # (`ignore_result` given: left out, each entry point has its default, tested below)
    found = one_outcome(apps["pickle"], {"ignore_result": False, **options})
    if isinstance(expected, type):
        assert found is expected
        return
    _, message = found
    for field, value in expected.items():
        assert getattr(message, field) == value, field


def test_a_serializer_the_apps_workers_refuse_is_a_named_error(apps: dict[str, Apps]) -> None:
    refused = {"serializer": "pickle", "ignore_result": True}
    assert one_outcome(apps["json"], refused) is ConfigurationError
    with pytest.raises(ConfigurationError, match=r"serializer='pickle'.*accept_content"):
        apps["json"].native.send_task(NAME, serializer="pickle")
    assert one_outcome(apps["json"], {"serializer": "json", "ignore_result": True})[0] == "celery"


def test_countdown_with_eta_names_both(apps: dict[str, Apps]) -> None:
    with pytest.raises(ConfigurationError, match=r"countdown=10 and eta=.*both"):
        apps["json"].native.send_task(NAME, countdown=10, eta=AT)


def test_inside_a_task_the_running_task_is_the_parent(apps: dict[str, Apps]) -> None:
    parent = Message(id="p1", task="t.parent", root_id="r1")
    with running(TaskContext(message=parent)):
        _, message = one_outcome(apps["json"], {"ignore_result": False})
        _, own = one_outcome(apps["json"], {"ignore_result": False, "root_id": "mine"})
    assert (message.parent_id, message.root_id) == ("p1", "r1")
    assert (own.parent_id, own.root_id) == ("p1", "mine")


def test_ignore_result_left_out_is_the_entry_points_default(apps: dict[str, Apps]) -> None:
    """Celery's `send_task` sends None (the worker asks the task); its `Task.apply_async`,
    and so a signature, sends the task's own (False unless the task says)."""
    found = {
        name: message.ignore_result for name, (_, message) in outcomes(apps["json"], {}).items()
    }
    assert found == {
        "hare Task.apply_async": None,
        "hare send_task": None,
        "hare canvas": False,
        "compat task.apply_async": False,
        "compat signature.apply_async": False,
    }


# -- the property: any options, one message --------------------------------------------------

ids = st.sampled_from(["a1", "b2", str(uuid.UUID(int=7))])
text = st.text(
    st.characters(codec="ascii", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8
)
when = st.one_of(
    st.integers(min_value=-60, max_value=10**6),
    st.floats(min_value=0.001, max_value=10**6),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda moment: moment.isoformat()
    ),
)
seconds = st.floats(min_value=0.5, max_value=3600) | st.integers(min_value=1, max_value=3600)
signature = st.builds(lambda name: {**LINK, "task": name}, st.sampled_from(["t.a", "t.b"]))
OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "queue": st.sampled_from(["q1", "celery"]),
    "task_id": ids,
    "countdown": when.filter(lambda value: not isinstance(value, datetime | str)),
    "eta": when,
    "expires": when,
    "priority": st.integers(min_value=0, max_value=9),
    "headers": st.dictionaries(st.sampled_from(["x-a", "trace"]), st.integers(), max_size=2),
    "shadow": text,
    "time_limit": seconds,
    "soft_time_limit": seconds,
    "argsrepr": text,
    "kwargsrepr": text,
    "reply_to": text,
    "link": st.lists(signature, max_size=2),
    "link_error": signature,
    "group_id": ids,
    "group_index": st.integers(min_value=0, max_value=5),
    "root_id": ids,
    "parent_id": ids,
    "retries": st.integers(min_value=0, max_value=5),
    "serializer": st.sampled_from(["json", "pickle"]),
    "stamps": st.dictionaries(st.sampled_from(["owner", "tier"]), text, min_size=1),
    "replaced_task_nesting": st.integers(min_value=0, max_value=3),
}
send_options = st.fixed_dictionaries(
    # `ignore_result` given: left out, each entry point has its default (tested above).
    {"ignore_result": st.booleans()},
    optional=OPTIONAL,
)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=send_options)
def test_the_same_options_make_the_same_message_everywhere(
    apps: dict[str, Apps], options: dict[str, Any]
) -> None:
    found = one_outcome(apps["pickle"], options)
    both = "countdown" in options and "eta" in options
    assert (found is ConfigurationError) == both, found


@settings(max_examples=examples(200), deadline=None)
@given(options=send_options)
def test_the_builder_reads_each_option_into_its_field(options: dict[str, Any]) -> None:
    env = Env(new_id=lambda: "new", now=NOW, origin="gen1@test")
    if "countdown" in options and "eta" in options:
        with pytest.raises(ConfigurationError, match="both"):
            build_message(NAME, ARGS, KWARGS, options, env)
        _, message = build_message(NAME, ARGS, KWARGS, options, env, from_wire=True)
        assert message.eta == (
            build_message(NAME, ARGS, KWARGS, {"countdown": options["countdown"]}, env)[1].eta
            if options["countdown"]
            else build_message(NAME, ARGS, KWARGS, {"eta": options["eta"]}, env)[1].eta
        )
        return
    queue, message = build_message(NAME, ARGS, KWARGS, options, env)
    assert queue == options.get("queue")
    assert message.id == message.correlation_id == options.get("task_id", "new")
    assert message.root_id == options.get("root_id", message.id)
    assert message.retries == options.get("retries", 0)
    assert message.timelimit == (options.get("time_limit"), options.get("soft_time_limit"))
    assert message.eta is None or message.eta.tzinfo is not None
    assert set(message.headers) >= set(options.get("headers", {}))
    assert message.headers.get("stamps") == options.get("stamps")


# -- off the wire: Celery's rule -------------------------------------------------------------


def test_a_workflow_off_the_wire_keeps_celerys_countdown_rule() -> None:
    """A chain a Celery client built with both on a step: the hare worker continuing it lets
    the countdown win, as a Celery worker would; applying the same step here refuses it."""
    step = _signature({"countdown": 30, "eta": AT.isoformat()})
    env = Env(new_id=lambda: "new", now=NOW, origin="gen1@test")
    done = Message(id="m1", task="t.first", embed=Embed(chain=(step,)))
    ((_, message),) = canvas.after_success(done, 5, env=env).publish
    assert message.eta == datetime.fromtimestamp(NOW + 30, UTC)
    assert message.args == (5, *ARGS)
    with pytest.raises(ConfigurationError, match="countdown=30 and eta="):
        canvas.apply(step, env=env)
