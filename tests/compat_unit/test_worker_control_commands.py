"""`celery.worker.control.control_command` / `inspect_command`: a task module's own
remote-control commands, answered by a hare worker serving a hare_compat app."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from hare.errors import NotSupportedError
from hare.testing import running_worker
from hare_compat import Celery
from hare_compat.worker.control import (
    Panel,
    add_consumer,
    cancel_consumer,
    control_command,
    inspect_command,
)

pytestmark = pytest.mark.anyio


@control_command(args=[("queue", str)], visible=False)
def compat_echo_queue(state: Any, queue: str, **kwargs: Any) -> dict[str, Any]:
    """Echo the queue back with the app's name."""
    return {"queue": queue, "app": state.app.main, "node": state.hostname}


@inspect_command(name="compat_whoami", alias="compat_who")
def whoami(state: Any, **kwargs: Any) -> str:
    return str(state.hostname)


@control_command()
def compat_fails(state: Any, **kwargs: Any) -> None:
    raise RuntimeError("pidbox reset integration test")


async def test_custom_commands_are_answered_by_a_hare_worker() -> None:
    app = Celery("cmds", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"
    hare = app.__hare_app__()
    assert Panel.meta["compat_whoami"]["type"] == "inspect"
    async with running_worker(hare) as worker:
        broadcast = app.control.broadcast  # sync, as Celery's: off the worker's loop
        echo = await asyncio.to_thread(
            broadcast, "compat_echo_queue", arguments={"queue": "q1"}, reply=True, timeout=0.5
        )
        who = await asyncio.to_thread(broadcast, "compat_who", reply=True, timeout=0.5)
        failed = await asyncio.to_thread(broadcast, "compat_fails", reply=True, timeout=0.5)
    node = worker.nodename
    assert echo == [{node: {"queue": "q1", "app": "cmds", "node": node}}]
    assert who == [{node: node}]
    assert "pidbox reset integration test" in failed[0][node]["error"]
    await hare.aclose()


async def test_flower_s_rate_limit_sets_a_task_s_rate_on_the_worker() -> None:
    app = Celery("rates", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"

    @app.task(name="rates.ping")
    async def ping() -> None: ...

    hare = app.__hare_app__()
    task = app.tasks["rates.ping"]
    assert task._rate_limiter is None
    async with running_worker(hare) as worker:

        def rate(name: str, value: str) -> Any:
            replies = app.control.broadcast(
                "rate_limit",
                arguments={"task_name": name, "rate_limit": value},
                reply=True,
                timeout=0.5,
            )
            return replies[0][worker.nodename]

        assert await asyncio.to_thread(rate, "rates.ping", "10/m") == {
            "ok": "new rate limit set successfully"
        }
        assert task.rate_limit == "10/m" and task._rate_limiter is not None
        assert task._rate_limiter.bucket.fill_rate == pytest.approx(10 / 60)
        assert await asyncio.to_thread(rate, "rates.ping", "0") == {
            "ok": "rate limit disabled successfully"
        }
        assert task._rate_limiter is None
        assert await asyncio.to_thread(rate, "rates.nope", "1/s") == {"error": "unknown task"}
        bad = await asyncio.to_thread(rate, "rates.ping", "fast")
        assert bad["error"].startswith("Invalid rate limit string: bad rate_limit 'fast'")
    await hare.aclose()


def test_consumers_cannot_be_added_or_cancelled_at_run_time() -> None:
    with pytest.raises(NotSupportedError, match="add_consumer"):
        add_consumer(None, "q")
    with pytest.raises(NotSupportedError, match="cancel_consumer"):
        cancel_consumer(None, "q")


async def test_inspect_answers_in_celery_s_shapes() -> None:
    app = Celery("shapes", broker="memory://", set_as_current=False)
    app.conf.update(task_default_queue="celery", worker_log_color=False)
    started, release = asyncio.Event(), asyncio.Event()

    @app.task(name="shapes.wait")
    async def wait() -> None:
        started.set()
        await release.wait()

    hare = app.__hare_app__()
    async with running_worker(hare) as worker:
        sent = await wait.aapply_async()
        await asyncio.wait_for(started.wait(), 10)
        inspect = app.control.inspect(timeout=0.5)
        queues = await asyncio.to_thread(inspect.active_queues)
        conf = await asyncio.to_thread(inspect.conf)
        query = await asyncio.to_thread(inspect.query_task, sent.id)
        unknown = await asyncio.to_thread(inspect.query_task, "nope")
        stats = await asyncio.to_thread(inspect.stats)
        report = await asyncio.to_thread(inspect.report)
        release.set()
    node = worker.nodename
    [queue] = queues[node]
    assert (queue["name"], queue["routing_key"], queue["exchange"]["name"]) == ("celery",) * 3
    assert queue["exchange"]["type"] == "direct"
    assert conf[node]["worker_log_color"] is False
    assert conf[node]["task_default_queue"] == "celery"
    assert conf[node]["deprecated_settings"] == []
    assert query[node][sent.id][0] == "active"
    assert query[node][sent.id][1]["id"] == sent.id
    assert unknown[node] == {}
    assert stats[node]["pool"]["processes"] == [os.getpid()]
    # Celery's layout (tools look for `software -> celery:`), naming hare as what serves it
    first = report[node]["ok"].splitlines()[0]
    assert first.startswith("software -> celery:5.7 (hare_compat) hare:")
    assert "task_default_queue: 'celery'" in report[node]["ok"]
    # conf names the modules the worker's tasks come from, as Celery's worker sets `include`
    assert "tests.compat_unit.test_worker_control_commands" in conf[node]["include"]
    await hare.aclose()
