"""task_routes and send options: Celery's routing, checked against Celery's own Router."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hare.errors import NotSupportedError
from hare_compat import Celery
from hare_compat.app.routes import Router, declared_queues, prepare
from hare_compat.exceptions import QueueNotFound


def by_prefix(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Any:
    if name.startswith("reports."):
        return {"queue": "reports"}
    if name == "fn.string":
        return "strings"
    return None


class OldStyle:
    def route_for_task(self, task: str, args: Any = None, kwargs: Any = None) -> Any:
        return {"queue": "old"} if task == "old.task" else None


ROUTES: list[Any] = [
    {
        "shop.charge": {"queue": "payments"},
        "shop.*": "shop",
        re.compile(r"^mail\.(send|bounce)$"): {"queue": "mail"},
    },
    by_prefix,
    OldStyle(),
    [("img.*", {"queue": "images"}), ("shop.ship", {"queue": "never"})],
]
NAMES = [
    "shop.charge",
    "shop.ship",
    "mail.send",
    "mail.bounce",
    "mail.other",
    "reports.daily",
    "fn.string",
    "old.task",
    "img.resize",
    "other.task",
]


def celery_queue(routes: Any, name: str, options: dict[str, Any]) -> str:
    import celery

    app = celery.Celery(set_as_current=False, broker="memory://")
    app.conf.task_routes = routes
    queue = app.amqp.router.route(dict(options), name)["queue"]
    return str(queue.name)


@pytest.mark.parametrize("name", NAMES)
def test_routes_pick_the_queue_celery_picks(name: str) -> None:
    router = Router(prepare(ROUTES), {}, default_queue="celery")
    assert router.route({}, name)["queue"] == celery_queue(ROUTES, name, {})


@pytest.mark.parametrize("name", ["shop.charge", "other.task"])
def test_an_explicit_queue_beats_the_routes_as_in_celery(name: str) -> None:
    router = Router(prepare(ROUTES), {}, default_queue="celery")
    assert router.route({"queue": "given"}, name)["queue"] == "given"
    assert celery_queue(ROUTES, name, {"queue": "given"}) == "given"


def test_a_single_dict_or_a_router_path_is_a_route_list() -> None:
    assert Router(prepare({"a.*": "qa"}), {}, default_queue="d").route({}, "a.x")["queue"] == "qa"
    path = f"{__name__}:by_prefix"
    assert Router(prepare(path), {}, default_queue="d").route({}, "reports.x")["queue"] == "reports"
    assert Router(prepare(None), {}, default_queue="d").route({}, "x")["queue"] == "d"


def test_a_route_may_add_options_that_the_call_overrides() -> None:
    router = Router(prepare({"t": {"queue": "q", "priority": 3}}), {}, default_queue="d")
    assert router.route({"priority": None}, "t") == {"queue": "q", "priority": 3}
    assert router.route({"priority": 9}, "t") == {"queue": "q", "priority": 9}


def test_routers_get_celerys_arguments() -> None:
    seen: list[tuple[Any, ...]] = []

    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None) -> None:
        seen.append((name, args, kwargs, options, task))

    Router([router], {}, default_queue="d").route({"countdown": 5}, "t", (1,), {"k": 2}, "T")
    assert seen == [("t", (1,), {"k": 2}, {"countdown": 5}, "T")]


def test_without_create_missing_queues_an_undeclared_queue_is_an_error() -> None:
    queues = declared_queues([type("Q", (), {"name": "known"})()])
    router = Router(prepare({"t": "unknown"}), queues, default_queue="known", create_missing=False)
    assert router.route({}, "other")["queue"] == "known"
    with pytest.raises(QueueNotFound, match="'unknown' missing from task_queues"):
        router.route({}, "t")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        self.calls.append((name, args, kwargs, options))
        return type("Sent", (), {"id": options.get("task_id", "id-1")})()

    def close(self) -> None:
        pass


def recording_app(**settings: Any) -> tuple[Celery, Recorder]:
    app = Celery("proj", set_as_current=False, broker="memory://", **settings)
    recorder = Recorder()
    app._hare = recorder  # type: ignore[assignment]
    return app, recorder


def test_send_task_routes_and_maps_options_onto_hare() -> None:
    app, hare = recording_app(
        task_routes={"shop.*": {"queue": "shop", "routing_key": "shop"}}, task_default_priority=4
    )
    result = app.send_task(
        "shop.charge",
        (1,),
        {"x": 2},
        countdown=5,
        task_id="fixed",
        exchange="",
        retry=True,
        retry_policy={"max_retries": 1},
        serializer="json",
        delivery_mode=2,
        headers={"trace": "t"},
    )
    assert result.id == "fixed"
    assert hare.calls == [
        (
            "shop.charge",
            (1,),
            {"x": 2},
            {
                "queue": "shop",
                "countdown": 5,
                "task_id": "fixed",
                "headers": {"trace": "t"},
                "priority": 4,
                "serializer": "json",
            },
        )
    ]


def test_send_task_takes_a_queue_object_and_a_direct_exchange_of_task_queues() -> None:
    exchange = type("Exchange", (), {"name": "media", "type": "direct"})()
    queue = type("Queue", (), {"name": "media", "exchange": exchange, "queue_arguments": None})()
    app, hare = recording_app(task_queues=[queue])
    app.send_task("t", queue=queue, exchange=exchange, routing_key="media")
    assert hare.calls[0][3] == {"queue": "media"}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"exchange": type("X", (), {"name": "tx", "type": "topic"})()}, r"exchange='tx'"),
        ({"producer": object()}, r"send_task\(producer=\)"),
        ({"compression": "zlib"}, r"send_task\(compression=\)"),
        ({"delivery_mode": 1}, r"delivery_mode=1"),
    ],
)
def test_send_options_hare_cannot_honour_raise(options: dict[str, Any], named: str) -> None:
    app, hare = recording_app()
    with pytest.raises(NotSupportedError, match=named):
        app.send_task("t", **options)
    assert hare.calls == []


@pytest.mark.parametrize(
    "options",
    [
        {"serializer": "pickle"},
        {"retries": 2},
        {"replaced_task_nesting": 1},
        {"stamped_headers": ["mark"], "mark": None},
    ],
)
def test_message_options_go_on_to_hares_builder_as_they_are(options: dict[str, Any]) -> None:
    """Its rules (`hare.core.calls`) are every sending path's: hare_compat adds none."""
    app, hare = recording_app()
    app.send_task("t", **options)
    assert hare.calls[0][3] == {"queue": "celery", **options}


def test_send_task_publishes_to_the_routed_queue_on_the_memory_broker() -> None:
    app = Celery("proj", set_as_current=False, broker="memory://", task_routes={"a.*": "alpha"})
    try:
        app.send_task("a.job", (1, 2))
        broker = app.hare.connections._memory_broker
        assert broker.message_count("alpha") == 1  # type: ignore[attr-defined]
    finally:
        app.close()
