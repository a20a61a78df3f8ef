"""The examples in `examples/` work as their docstrings say, on the real broker."""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType

import httpx
import pytest

from hare import Worker, signals
from hare.testing import Ledger

pytestmark = pytest.mark.amqp


def _fresh(name: str) -> ModuleType:
    """Import the example anew: its app reads HARE_* variables when it is made."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.anyio
async def test_the_fastapi_example_sends_from_a_request_and_a_worker_runs_it(
    amqp_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARE_BROKER_URL", amqp_url)
    monkeypatch.setenv("HARE_DEFAULT_QUEUE", f"{unique}.shop")
    example = _fresh("examples.fastapi_app")
    transport = httpx.ASGITransport(app=example.api)
    async with (
        example.api.router.lifespan_context(example.api),  # connects, as uvicorn would
        httpx.AsyncClient(transport=transport, base_url="http://shop") as client,
    ):
        publisher = await example.app.publisher()
        assert publisher.transport.is_connected  # before the first request
        answer = await client.post("/orders/42/receipt", params={"email": "a@example.com"})
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["task_id"]

    ledger = Ledger()
    ledger.bind()

    def ran(sender: object = None, task_id: str = "", retval: object = None, **_: object) -> None:
        ledger.record(task_id, retval)

    signals.task_postrun.connect(ran)
    try:
        worker = Worker(example.app)
        running = asyncio.create_task(worker.run())
        await ledger.wait_for(1)
        worker.stop()
        await running
    finally:
        signals.task_postrun.disconnect(ran)
        await example.app.aclose()
    assert ledger.runs == [(task_id, "receipt for order 42 sent to a@example.com")]


@pytest.mark.anyio
async def test_the_webhooks_example_delivers_each_push_once_to_its_receiver(
    amqp_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARE_BROKER_URL", amqp_url)
    monkeypatch.setenv("HARE_DEFAULT_QUEUE", f"{unique}.webhooks")
    example = _fresh("examples.webhooks")
    await asyncio.wait_for(example.main(), timeout=30)
    assert len(example.done) == 3
