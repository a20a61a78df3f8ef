"""Stamping from hare_compat's client (Celery 5.3's `sig.stamp`): the stamps each part of a
canvas gets, Celery's merge rules, the headers a stamped message carries, and a worker that
discards what `revoke_by_stamped_headers` names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hare.testing import drain, running_worker
from hare_compat import Celery, chain, chord, group
from hare_compat.canvas import StampingVisitor
from hare_compat.canvas_stamping import merge_stamps
from hare_compat.exceptions import TaskRevokedError

pytestmark = pytest.mark.anyio


class Monitoring(StampingVisitor):
    def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
        return {"monitoring_id": "m1"}

    def on_group_start(self, group: Any, **headers: Any) -> dict[str, Any]:
        return {"in_group": True}

    def on_callback(self, callback: Any, **headers: Any) -> dict[str, Any]:
        return {"on_callback": True}

    def on_errback(self, errback: Any, **headers: Any) -> dict[str, Any]:
        return {"on_errback": True}


def make_app() -> Celery:
    app = Celery("stamps", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"
    return app


def stamps(sig: Any) -> dict[str, Any]:
    return {name: sig.options[name] for name in sorted(sig.options["stamped_headers"])}


def test_each_part_of_a_canvas_gets_its_stamps() -> None:
    app = make_app()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    one = add.s(1, 2)
    one.link(add.s(3))
    one.link_error(add.s(4))
    one.stamp(Monitoring(), tenant="acme")
    assert stamps(one) == {"monitoring_id": "m1", "tenant": "acme"}
    [callback], [errback] = one.options["link"], one.options["link_error"]
    assert stamps(callback) == {"monitoring_id": "m1", "on_callback": True, "tenant": "acme"}
    assert stamps(errback) == {"monitoring_id": "m1", "on_errback": True, "tenant": "acme"}

    parts = group(add.s(1, 1), chain(add.s(2, 2), add.s(3)))
    parts.stamp(Monitoring())
    first, inner = parts.tasks
    assert stamps(first) == {"in_group": True, "monitoring_id": "m1"}
    assert all(stamps(t) == {"in_group": True, "monitoring_id": "m1"} for t in inner.tasks)

    joined = chord([add.s(1, 1), add.s(2, 2)], add.s(0).set(queue="work"))
    joined.stamp(Monitoring())
    header = getattr(joined.tasks, "tasks", joined.tasks)
    assert all(stamps(t)["monitoring_id"] == "m1" for t in header)
    assert stamps(joined.body)["monitoring_id"] == "m1"


def test_duplicate_stamps_merge_as_celery_merges_them() -> None:
    replaced = {"a": 1, "n": {"x": 1}}
    merge_stamps(replaced, {"a": 2, "b": 3, "n": {"y": 2}}, aggregate=False)
    # (Celery's code keeps the first value: its docstring says otherwise)
    assert replaced == {"a": 1, "b": 3, "n": {"x": 1, "y": 2}}
    gathered: dict[str, Any] = {"a": 1, "l": [1]}
    merge_stamps(gathered, {"a": 2, "l": [2]}, aggregate=True)
    assert gathered == {"a": [1, 2], "l": [1, 2]}

    app = make_app()

    @app.task(name="t.noop")
    def noop() -> None:
        return None

    sig = noop.s()
    sig.stamp(tenant="a")
    sig.stamp(append_stamps=True, tenant="b")
    assert sig.options["tenant"] == ["b", "a"]


async def test_a_stamped_message_carries_its_stamps_and_a_revoked_stamp_stops_it() -> None:
    app = make_app()
    ran: list[int] = []

    @app.task(name="t.job")
    def job(n: int) -> int:
        ran.append(n)
        return n

    app.finalize()
    hare = app.__hare_app__()
    transport = (await hare.publisher()).transport
    sig = job.s(1)
    sig.stamp(Monitoring())
    await asyncio.to_thread(sig.apply_async)
    [sent] = await drain(transport, "work")
    headers = sent.properties.headers
    assert headers["stamped_headers"] == ["monitoring_id"]
    assert headers["stamps"] == {"monitoring_id": "m1"}

    async with running_worker(hare):
        await asyncio.to_thread(
            app.control.revoke_by_stamped_headers, {"monitoring_id": ["m1"]}, reply=True
        )
        revoked = job.s(2)
        revoked.stamp(Monitoring())
        stopped = await asyncio.to_thread(revoked.apply_async)
        other = job.s(3)
        other.stamp(tenant="t")
        kept = await asyncio.to_thread(other.apply_async)
        assert await kept.aget(timeout=5) == 3
        with pytest.raises(TaskRevokedError):
            await stopped.aget(timeout=5)
    assert ran == [3]
