"""What the Celery methods hare_compat gained do, next to what Celery's own do."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hare.context import TaskContext, running
from hare.core.message import Message
from hare.errors import NotSupportedError
from hare.results.state import TaskResult
from hare_compat import Celery, exceptions
from hare_compat.canvas import chord, group
from hare_compat.result import AsyncResult, ResultSet, allow_join_result, denied_join_result
from hare_compat.schedules import crontab, crontab_parser, schedule

celery = pytest.importorskip("celery")
celery_schedules = pytest.importorskip("celery.schedules")


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("api", broker="memory://", backend="memory://", set_as_current=False)
    yield app
    app.close()


def store(app: Celery, task_id: str, value: Any, state: str = "SUCCESS") -> None:
    results = app.hare.results
    assert results is not None
    results._call(results.store(TaskResult(task_id=task_id, state=state, value=value), None))


# -- results ---------------------------------------------------------------------------------


def test_a_result_set_joins_and_calls_back_in_order(app: Celery) -> None:
    store(app, "a", 1)
    store(app, "b", 2)
    results = app.ResultSet([app.AsyncResult("a")])
    results.add(app.AsyncResult("a"))  # a member already
    results.update([app.AsyncResult("b")])
    assert [r.id for r in results] == ["a", "b"] and results.completed_count() == 2
    assert results.get() == results.join() == results.join_native() == [1, 2]
    seen: list[tuple[str, Any]] = []
    assert results.join(callback=lambda *pair: seen.append(pair)) == []
    assert results.join_native(callback=lambda *pair: None) is None
    assert seen == [("a", 1), ("b", 2)]
    assert [(tid, meta["status"], meta["result"]) for tid, meta in results.iter_native()] == [
        ("a", "SUCCESS", 1),
        ("b", "SUCCESS", 2),
    ]
    results.remove("a")  # a task id names a member, as in Celery
    with pytest.raises(KeyError):
        results.remove("a")
    results.discard("a")
    assert len(results) == 1 and results.app is app
    results.clear()
    assert results.results == []


def test_a_failure_in_a_set_is_raised_unless_asked_not_to(app: Celery) -> None:
    store(app, "ok", 1)
    store(app, "bad", KeyError("k"), "FAILURE")
    results = app.GroupResult("g", [app.AsyncResult("ok"), app.AsyncResult("bad")])
    with pytest.raises(KeyError):
        results.get()
    assert isinstance(results.get(propagate=False)[1], KeyError)
    with pytest.raises(KeyError):
        results.maybe_throw()
    assert results.failed() and not results.successful() and not results.waiting()


def test_group_results_cannot_be_saved_in_hare_but_pickle_with_their_app_classes(
    app: Celery,
) -> None:
    group_result = app.GroupResult("g", [app.AsyncResult("a")])
    calls: list[Callable[[], Any]] = [
        group_result.save,
        group_result.delete,
        lambda: app.GroupResult.restore("g"),
    ]
    for call in calls:
        with pytest.raises(NotSupportedError, match="GroupResult"):
            call()
    for handle in (group_result, app.AsyncResult("a"), app.ResultSet([app.AsyncResult("a")])):
        copied = pickle.loads(pickle.dumps(handle))
        assert copied == handle and type(copied) in type(handle).__mro__
    assert isinstance(app.AsyncResult("a"), AsyncResult) and app.AsyncResult("a").app is app
    assert isinstance(app.ResultSet([]), ResultSet) and app.ResultSet([]).app is app


def test_a_result_tree_is_walked_breadth_first(app: Celery) -> None:
    store(app, "leaf", 3)
    results = app.hare.results
    assert results is not None
    root = TaskResult(task_id="root", state="SUCCESS", value=1, children=((("leaf", None), None),))
    results._call(results.store(root, None))
    handle = app.AsyncResult("root")
    assert [node.id for _, node in handle.iterdeps()] == ["root", "leaf"]
    assert [value for _, value in handle.collect()] == [1, 3] and handle.get_leaf() == 3
    with pytest.raises(exceptions.IncompleteStream):
        list(app.AsyncResult("pending").iterdeps())
    assert [n.id for _, n in app.AsyncResult("pending").iterdeps(intermediate=True)] == ["pending"]


def test_allow_join_result_lets_a_task_wait_as_in_celery(app: Celery) -> None:
    store(app, "done", 1)
    handle = app.AsyncResult("done")
    with running(TaskContext(message=Message(id="outer", task="t.outer"))):
        with pytest.raises(RuntimeError, match="Never call result.get"):
            handle.get()
        with allow_join_result():
            assert handle.get() == 1
    with denied_join_result(), pytest.raises(RuntimeError):
        handle.get()


# -- canvas ----------------------------------------------------------------------------------


def test_list_options_links_and_skew_as_in_celery(app: Celery) -> None:
    @app.task(shared=False, name="api.add")
    def add(x: int, y: int) -> int:
        return x + y

    real: Any = celery.Celery(set_as_current=False)
    ours, theirs = add.s(1, 2), real.signature("api.add", (1, 2))
    for sig in (ours, theirs):
        sig.append_to_list_option("link", "x")
        sig.append_to_list_option("link", "x")
        sig.extend_list_option("link_error", "y")
    assert ours.options == theirs.options == {"link": ["x"], "link_error": ["y"]}
    assert ours.reprcall(5) == theirs.reprcall(5) == "api.add(5, 1, 2)"
    linked = add.s(1, 2)
    linked.link(add.s(3))
    assert [s.task for s in linked.flatten_links()] == ["api.add", "api.add"]
    skewed = group(add.s(1, 1), add.s(2, 2), add.s(3, 3)).skew(start=1, stop=2, step=1)
    assert [t.options["countdown"] for t in skewed.tasks] == [1, 2, 2]
    with pytest.raises(NotSupportedError, match="router"):
        chord([add.s(1, 1)], add.s(1)).apply_async(router=object())


# -- app.conf --------------------------------------------------------------------------------


def test_app_conf_is_a_mapping_as_celerys(app: Celery) -> None:
    conf = Celery("c", broker="memory://", set_as_current=False, task_default_queue="q").conf
    assert conf["task_default_queue"] == "q" and len(conf) == len(list(conf.keys()))
    assert dict(conf.items())["task_default_queue"] == "q"
    assert conf.pop("task_default_queue") == "q" and conf.task_default_queue == "celery"
    assert conf.pop("task_default_queue", "gone") == "gone"
    conf.update({"task_default_priority": 5}, task_default_rate_limit=None)
    assert conf.popitem() == ("task_default_rate_limit", None)
    conf.add_defaults({"task_default_priority": 1, "my_own_setting": 2})
    assert (conf.task_default_priority, conf.my_own_setting) == (5, 2)
    assert "my_own_setting" in list(conf)
    conf.clear()
    assert conf.task_default_priority == 1  # the added default shows again
    assert conf.find_option("concurrency")[:2] == ("worker", "concurrency")
    assert conf.find_value_for_key("concurrency") is None
    assert conf.get_by_parts("task", "default", "queue") == "celery"


def test_table_hides_secrets_as_celery_does() -> None:
    conf = Celery(
        "c",
        broker="amqp://u:secret@h//",
        set_as_current=False,
        backend="redis://:pw@h/0",
        my_secret_key="k",
        my_api_token="t",
    ).conf
    table = conf.table()
    assert "secret" not in table["broker_url"] and "pw" not in table["result_backend"]
    assert table["my_api_token"] == table["my_secret_key"] == "********"
    assert conf.table(censored=False)["broker_url"] == "amqp://u:secret@h//"
    assert "u:secret@" not in conf.humanize()


def test_add_defaults_waits_for_the_configuration(app: Celery) -> None:
    later = Celery("d", broker="memory://", set_as_current=False)
    later.add_defaults(lambda: {"task_default_queue": "from-defaults"})
    later.config_from_object({"task_default_priority": 3})
    assert later.conf.task_default_queue == "from-defaults"
    assert later.either("task_default_queue", None, "given") == "given"
    assert later.either("task_default_queue") == "from-defaults"


def test_select_queues_and_type_checker(app: Celery) -> None:
    app.conf.task_create_missing_queues = False
    app.select_queues(["celery"])
    assert app.worker_options()["queues"] == ["celery"]
    app.select_queues(["elsewhere"])
    with pytest.raises(Exception, match="elsewhere"):
        app.worker_options()
    check = app.type_checker(lambda self, x, y=1: None, bound=True).__func__
    check(1)
    with pytest.raises(TypeError):
        check(1, 2, 3)


# -- schedules: Celery's answers -------------------------------------------------------------

NOW = datetime(2025, 3, 3, 10, 7, 30, tzinfo=UTC)
RUNS = [NOW - timedelta(minutes=m) for m in (0, 3, 7, 8, 20, 60 * 25)]


@pytest.mark.parametrize("last", RUNS, ids=[r.isoformat() for r in RUNS])
def test_is_due_answers_as_celerys_beat(app: Celery, last: datetime) -> None:
    real = celery.Celery(set_as_current=False)
    pairs = [
        (schedule(300, app=app, nowfun=lambda: NOW), celery_schedules.schedule(300, app=real)),
        (
            crontab(minute="*/15", app=app, nowfun=lambda: NOW),
            celery_schedules.crontab(minute="*/15", app=real, nowfun=lambda: NOW),
        ),
        (
            crontab(hour=3, minute=0, day_of_week="mon-fri", app=app, nowfun=lambda: NOW),
            celery_schedules.crontab(
                hour=3, minute=0, day_of_week="mon-fri", app=real, nowfun=lambda: NOW
            ),
        ),
    ]
    pairs[0][1].nowfun = lambda: NOW
    for ours, theirs in pairs:
        assert tuple(ours.is_due(last)) == tuple(theirs.is_due(last))
        assert ours.remaining_estimate(last) == theirs.remaining_estimate(last)


@pytest.mark.parametrize(
    ("max_", "min_", "spec"),
    [(60, 0, "*/15"), (24, 0, "1-5,22"), (7, 0, "mon-fri"), (31, 1, "*/3"), (12, 1, "2-12/2")],
)
def test_crontab_parser_parses_as_celerys(max_: int, min_: int, spec: str) -> None:
    assert crontab_parser(max_, min_).parse(spec) == celery_schedules.crontab_parser(
        max_, min_
    ).parse(spec)
