"""A worker whose app never touched `app.http` still delivers a one-off push: the push task
is registered when the first push arrives (the producer may be another process)."""

from __future__ import annotations

import pytest

from hare.http.spec import PUSH_TASK
from hare.testing import eventually, memory_app, running_worker
from tests.http.server import Reply, push_server

pytestmark = pytest.mark.anyio


async def test_a_push_reaches_a_worker_whose_app_defines_no_hook() -> None:
    producer = memory_app()
    worker_app = memory_app(default_queue="q")
    assert PUSH_TASK not in worker_app.tasks
    async with push_server() as server:
        url = server.script("/hook", Reply(200))
        spec, _ = producer.http.one_off(url, "POST", {"n": 1}, None, {})
        async with running_worker(worker_app):
            await worker_app.asend_task(PUSH_TASK, kwargs=spec.to_kwargs(), queue="q")
            await eventually(lambda: len(server.answered) == 1)
    [request] = server.ledger
    assert request.path == "/hook" and request.body == b'{"n":1}'
    assert PUSH_TASK in worker_app.tasks
