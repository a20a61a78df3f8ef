"""Celery's result body, byte for byte: hare's encoder against Celery's dumps and Celery's code.

The verbatim bodies are a Celery 5.7 worker's rpc replies (research/celery.md §2.12); the
others come from Celery's own `Backend` (installed as a test dependency), so a change on
either side shows here.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.backends.base import BaseBackend

from hare.core.codec import json_dumps
from hare.errors import MalformedResult, RemoteError
from hare.results import celery_format
from hare.results.celery_format import (
    chord_entry_dumps,
    chord_entry_loads,
    dumps,
    exception_from_meta,
    exception_to_meta,
    loads,
    to_meta,
)
from hare.results.state import FAILURE, TaskResult

BERLIN = timezone(timedelta(hours=1))
DONE = datetime(2026, 11, 22, 13, 27, 47, 55255, tzinfo=BERLIN)
NOW = datetime(2030, 1, 1, tzinfo=UTC)

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "<project>/tasks.py", line 25, in boom\n'
    '    raise ValueError("kaboom")\n'
    "ValueError: kaboom\n"
)

#: (hare's result, the body a Celery 5.7 worker replied with for it).
CELERY_REPLIES: list[tuple[TaskResult, bytes]] = [
    (
        TaskResult(
            task_id="aaaaaaaa-0000-0000-0000-000000000001",
            state="STARTED",
            value={"pid": 12762, "hostname": "w1@vm"},
        ),
        b'{"status": "STARTED", "result": {"pid": 12762, "hostname": "w1@vm"}, "traceback": '
        b'null, "children": [], "date_done": null, "task_id": '
        b'"aaaaaaaa-0000-0000-0000-000000000001"}',
    ),
    (
        TaskResult(
            task_id="aaaaaaaa-0000-0000-0000-000000000001", state="SUCCESS", value=5, date_done=DONE
        ),
        b'{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": '
        b'"2026-11-22T13:27:47.055255+01:00", "task_id": "aaaaaaaa-0000-0000-0000-000000000001"}',
    ),
    (
        TaskResult(
            task_id="aaaaaaaa-0000-0000-0000-000000000002",
            state="FAILURE",
            value=ValueError("kaboom"),
            traceback=TRACEBACK,
            date_done=DONE,
        ),
        b'{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["kaboom"], '
        b'"exc_module": "builtins"}, "traceback": '
        + json_dumps(TRACEBACK)
        + b', "children": [], "date_done": "2026-11-22T13:27:47.055255+01:00", "task_id": '
        b'"aaaaaaaa-0000-0000-0000-000000000002"}',
    ),
    (
        TaskResult(
            task_id="aaaaaaaa-0000-0000-0000-000000000004",
            state="RETRY",
            value=RuntimeError("again"),
            traceback=TRACEBACK,
            children=([["aaaaaaaa-0000-0000-0000-000000000004", None], None],),
        ),
        b'{"status": "RETRY", "result": {"exc_type": "RuntimeError", "exc_message": ["again"], '
        b'"exc_module": "builtins"}, "traceback": '
        + json_dumps(TRACEBACK)
        + b', "children": [[["aaaaaaaa-0000-0000-0000-000000000004", null], null]], '
        b'"date_done": null, "task_id": "aaaaaaaa-0000-0000-0000-000000000004"}',
    ),
    (
        TaskResult(
            task_id="min-d",
            state="FAILURE",
            value=RemoteError("NotRegistered", "celery.exceptions", ["tasks.unknown_task"]),
            date_done=datetime(2026, 11, 22, 13, 45, 2, 976579, tzinfo=BERLIN),
        ),
        b'{"status": "FAILURE", "result": {"exc_type": "NotRegistered", "exc_message": '
        b'["tasks.unknown_task"], "exc_module": "celery.exceptions"}, "traceback": null, '
        b'"children": [], "date_done": "2026-11-22T13:45:02.976579+01:00", "task_id": "min-d"}',
    ),
]


class Outer:
    class Nested(Exception):
        """An exception class Celery names by its qualified name."""


class TwoArgs(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(code, why)


class KeywordOnly(Exception):
    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")


class ShortRepr:
    def __repr__(self) -> str:
        return "<ShortRepr>"


@pytest.fixture(scope="module")
def celery_backend() -> BaseBackend:
    return BaseBackend(Celery("format", set_as_current=False), serializer="json")


@pytest.mark.parametrize(("result", "body"), CELERY_REPLIES)
def test_encodes_as_a_celery_worker_replies(result: TaskResult, body: bytes) -> None:
    assert dumps(result, now=NOW) == body


@pytest.mark.parametrize(("result", "body"), CELERY_REPLIES)
def test_decodes_what_a_celery_worker_replied(result: TaskResult, body: bytes) -> None:
    read = loads(body)
    assert (read.task_id, read.state, read.traceback) == (
        result.task_id,
        result.state,
        result.traceback,
    )
    assert read.date_done == result.date_done
    assert read.children == result.children
    if isinstance(result.value, BaseException):
        # The same class (NotRegistered itself here, as the test imported Celery).
        assert exception_to_meta(read.value) == exception_to_meta(result.value)
    else:
        assert read.value == result.value


def test_a_ready_result_without_a_date_is_dated_now_and_others_never() -> None:
    ready = to_meta(TaskResult(task_id="t", state="SUCCESS", value=1), now=NOW)
    custom = to_meta(TaskResult(task_id="t", state="PROGRESS", value={"done": 3}), now=NOW)
    assert ready["date_done"] == "2030-01-01T00:00:00+00:00"
    assert custom["date_done"] is None
    assert custom["result"] == {"done": 3}


def test_group_parent_and_extended_fields_as_celery_writes_them(
    celery_backend: BaseBackend,
) -> None:
    request = SimpleNamespace(group="g1", parent_id="p1", children=[])
    celery_meta = celery_backend._get_result_meta(
        result=7, state="SUCCESS", traceback=None, request=request
    )
    result = TaskResult(
        task_id="t1",
        state="SUCCESS",
        value=7,
        group_id="g1",
        parent_id="p1",
        extra={"name": "tasks.add", "args": [3, 4], "queue": "celery"},
    )
    meta = to_meta(result, now=NOW)
    assert list(meta)[:7] == [*celery_meta, "name"][:7]  # same keys, same order
    assert (meta["group_id"], meta["parent_id"]) == ("g1", "p1")
    back = loads(json_dumps(meta))
    assert (back.group_id, back.parent_id) == ("g1", "p1")
    assert back.extra == {"name": "tasks.add", "args": [3, 4], "queue": "celery"}


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("kaboom"),
        ValueError("two", 2),
        KeyError("missing"),
        TwoArgs(404, "not found"),
        Outer.Nested("deep"),
        ValueError(ShortRepr(), {"k": [1, 2]}),
        RuntimeError(),
    ],
    ids=repr,
)
def test_exceptions_encode_as_celery_prepare_exception(
    celery_backend: BaseBackend, exc: BaseException
) -> None:
    ours = exception_to_meta(exc)
    theirs = celery_backend.prepare_exception(exc)
    assert ours == {**theirs, "exc_message": list(theirs["exc_message"])}


@pytest.mark.parametrize(
    "exc",
    [ValueError("kaboom"), TwoArgs(404, "not found"), Outer.Nested("deep"), KeyError("k")],
    ids=repr,
)
def test_exceptions_decode_as_celery_exception_to_python(
    celery_backend: BaseBackend, exc: BaseException
) -> None:
    meta = celery_backend.prepare_exception(exc)
    ours, theirs = exception_from_meta(meta), celery_backend.exception_to_python(meta)
    assert type(ours) is type(theirs) is type(exc)
    assert ours is not None and ours.args == theirs.args == exc.args


@pytest.mark.parametrize(
    ("meta", "exc_type", "exc_module"),
    [
        # Not an exception class: Celery raises SecurityError; hare never calls it either.
        ({"exc_type": "system", "exc_module": "os", "exc_message": ["rm -rf /"]}, "system", "os"),
        ({"exc_type": "eval", "exc_module": "builtins", "exc_message": ["1"]}, "eval", "builtins"),
        # A BaseException that is not an Exception: would stop the caller's program.
        (
            {"exc_type": "SystemExit", "exc_module": "builtins", "exc_message": [3]},
            "SystemExit",
            "builtins",
        ),
        # Not imported here: never imported because a result says so.
        (
            {"exc_type": "Boom", "exc_module": "no_such_module_x", "exc_message": ["b"]},
            "Boom",
            "no_such_module_x",
        ),
        ({"exc_type": "Nope", "exc_module": "builtins", "exc_message": ["b"]}, "Nope", "builtins"),
        ({"exc_type": "Loose", "exc_message": ["no module"]}, "Loose", None),
        # A class that does not take its stored arguments back.
        (
            {"exc_type": "KeywordOnly", "exc_module": __name__, "exc_message": ["code 3"]},
            "KeywordOnly",
            __name__,
        ),
    ],
)
def test_unknown_or_unsafe_exceptions_become_remote_errors(
    meta: dict[str, Any], exc_type: str, exc_module: str | None
) -> None:
    exc = exception_from_meta(meta)
    assert isinstance(exc, RemoteError)
    assert (exc.exc_type, exc.exc_module, list(exc.args)) == (
        exc_type,
        exc_module,
        meta["exc_message"],
    )
    # Passed on, it keeps the original's identity (a Celery client sees the same dict).
    assert exception_to_meta(exc) == {"exc_message": meta["exc_message"], **meta} | {
        "exc_module": exc_module
    }


def test_remote_error_reads_well_and_pickles() -> None:
    exc = RemoteError("TaskRevokedError", "celery.exceptions", ["expired"])
    assert str(exc) == "celery.exceptions.TaskRevokedError: expired"
    again = pickle.loads(pickle.dumps(exc))
    assert (again.exc_type, again.exc_module, again.args) == (
        exc.exc_type,
        exc.exc_module,
        exc.args,
    )


def test_celery_reads_what_hare_stores_and_hare_what_celery_stores(
    celery_backend: BaseBackend,
) -> None:
    ours = TaskResult(task_id="x1", state="FAILURE", value=TwoArgs(1, "a"), date_done=DONE)
    theirs = celery_backend.decode_result(dumps(ours, now=NOW))
    assert theirs["status"] == "FAILURE" and theirs["task_id"] == "x1"
    assert type(theirs["result"]) is TwoArgs and theirs["result"].args == (1, "a")

    celery_meta = celery_backend._get_result_meta(
        result=celery_backend.encode_result(Outer.Nested("n"), "FAILURE"),
        state="FAILURE",
        traceback="tb",
        request=None,
    )
    read = loads(celery_backend.encode({**celery_meta, "task_id": "x2"}))
    assert (read.task_id, read.state, read.traceback, read.children) == ("x2", FAILURE, "tb", ())
    assert type(read.value) is Outer.Nested and read.value.args == ("n",)
    assert read.date_done is not None and read.date_done.tzinfo is not None


def test_values_keep_kombu_json_types() -> None:
    value = {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "raw": b"\x00\xff"}
    read = loads(dumps(TaskResult(task_id="t", state="SUCCESS", value=value), now=NOW))
    assert read.value == value


def test_a_value_json_cannot_carry_is_an_error_that_names_the_task() -> None:
    with pytest.raises(MalformedResult, match="task t9"):
        dumps(TaskResult(task_id="t9", state="SUCCESS", value=object()), now=NOW)
    failure = celery_format.unencodable(
        TaskResult(task_id="t9", state="SUCCESS", value=object()), MalformedResult("no")
    )
    read = loads(dumps(failure, now=NOW))
    assert read.state == FAILURE
    # kombu's own EncodeError here (the test imported kombu), a RemoteError without kombu.
    assert exception_to_meta(read.value) == {
        "exc_type": "EncodeError",
        "exc_message": ["no"],
        "exc_module": "kombu.exceptions",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"result": 1, "task_id": "t"}', "status"),
        (b'{"status": "SUCCESS", "result": 1}', "task_id"),
        (b'{"status": "SUCCESS", "task_id": "t", "date_done": "yesterday"}', "ISO-8601"),
        (b'{"status": "SUCCESS", "task_id": "t", "date_done": 5}', "ISO-8601"),
        (b'{"status": "SUCCESS", "task_id": "t", "children": 3}', "children"),
        (b'{"status": "FAILURE", "task_id": "t", "result": {"exc_type": ""}}', "exc_type"),
        (
            b'{"status": "FAILURE", "task_id": "t", "result": {"exc_type": "E", "exc_module": 1}}',
            "exc_module",
        ),
    ],
)
def test_bad_bodies_are_named_errors(body: bytes, message: str) -> None:
    with pytest.raises(MalformedResult, match=message):
        loads(body)


def test_a_body_without_task_id_takes_the_correlation_id() -> None:
    assert loads(b'{"status": "PENDING", "result": null}', task_id="c1").task_id == "c1"


def test_a_naive_date_is_read_as_utc() -> None:
    read = loads(b'{"status": "SUCCESS", "task_id": "t", "date_done": "2026-01-01T00:00:00"}')
    assert read.date_done == datetime(2026, 1, 1, tzinfo=UTC)


def test_chord_entries_as_celery_redis_stores_them(celery_backend: BaseBackend) -> None:
    failed = TaskResult(task_id="p2", state="FAILURE", value=ValueError("bad"))
    theirs = celery_backend.encode(
        [1, "p2", "FAILURE", celery_backend.encode_result(ValueError("bad"), "FAILURE")]
    )
    assert chord_entry_dumps(failed) == theirs.encode()
    read = chord_entry_loads(theirs, group_id="g")
    assert (read.task_id, read.state, read.group_id) == ("p2", "FAILURE", "g")
    assert type(read.value) is ValueError and read.value.args == ("bad",)
    ok = chord_entry_loads(chord_entry_dumps(TaskResult(task_id="p1", state="SUCCESS", value=[1])))
    assert (ok.task_id, ok.value) == ("p1", [1])
    with pytest.raises(MalformedResult, match="task_id, state"):
        chord_entry_loads(b'[1, "p1"]')


@pytest.mark.parametrize("name", ["TaskRevokedError", "ChordError"])
def test_hare_s_revoked_and_chord_errors_are_celery_s_on_both_sides(name: str) -> None:
    from celery import exceptions

    from hare import errors

    hare_cls = {"TaskRevokedError": errors.TaskRevoked, "ChordError": errors.ChordError}[name]
    meta = celery_format.exception_to_meta(hare_cls("expired"))
    assert meta == {
        "exc_type": name,
        "exc_message": ["expired"],
        "exc_module": "celery.exceptions",
    }
    # A Celery client rebuilds Celery's class (hare_compat's where it is loaded); hare
    # alone, hare's.
    celery_side = celery_format.exception_from_meta(meta, modules={"celery.exceptions": exceptions})
    assert isinstance(celery_side, getattr(exceptions, name))
    hare_side = celery_format.exception_from_meta(meta, modules={})
    assert isinstance(hare_side, hare_cls) and hare_side.args == ("expired",)


def test_saved_groups_as_celery_saves_and_restores_them(celery_backend: BaseBackend) -> None:
    from celery.result import AsyncResult as CeleryResult
    from celery.result import GroupResult, result_from_tuple

    from hare.results.state import GroupRef

    app = celery_backend.app
    inner = GroupResult("g2", [CeleryResult("a", app=app), CeleryResult("b", app=app)], app=app)
    theirs = GroupResult("g1", [CeleryResult("x", app=app), inner], app=app)
    ours = GroupRef("g1", ("x", GroupRef("g2", ("a", "b"))))
    # What Celery's Redis apply_chord (and GroupResult.save) writes, hare reads ...
    assert celery_format.group_loads(celery_backend.encode({"result": theirs.as_tuple()})) == ours
    # ... and what hare writes, Celery restores as the same results.
    saved = celery_backend.decode(celery_format.group_dumps(ours))["result"]
    restored = result_from_tuple(saved, app)
    assert restored == theirs
    assert [isinstance(r, GroupResult) for r in restored.results] == [False, True]
    with pytest.raises(MalformedResult, match="as_tuple"):
        celery_format.group_loads(b'{"result": [["x", null], null]}')
    with pytest.raises(MalformedResult, match="members"):
        celery_format.group_loads(b'{"result": [["g", null], [7]]}')
