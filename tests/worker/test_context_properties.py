"""A task sees the AMQP properties its message arrived with (Celery's `request.properties`),
whoever published it; `delivery_info["redelivered"]` is set for a redelivery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hare.context import current
from hare.core.envelope import Envelope, Properties
from hare.testing import Ledger, ManualClock, memory_app, running_worker

pytestmark = pytest.mark.anyio


async def test_a_task_sees_its_message_properties() -> None:
    app = memory_app(ManualClock(), default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.props")
    async def props() -> None:
        context = current()
        assert context is not None
        ledger.record("props", (dict(context.properties), dict(context.delivery_info)))

    async with running_worker(app):
        transport = (await app.publisher()).transport
        body = json.dumps([[], {}, {"callbacks": None, "errbacks": None, "chain": None}])
        headers: dict[str, Any] = {"task": "t.props", "id": "p-1", "retries": 0}
        await transport.publish(
            Envelope(
                exchange="",
                routing_key="work",
                body=body.encode(),
                properties=Properties(
                    content_type="application/json",
                    content_encoding="utf-8",
                    headers=headers,
                    app_id="1234",
                    priority=3,
                    correlation_id="p-1",
                ),
            )
        )
        await ledger.wait_for(1)
    properties, delivery_info = ledger.runs[0][1]
    assert properties["app_id"] == "1234"
    assert properties["priority"] == 3 and properties["correlation_id"] == "p-1"
    assert properties["content_type"] == "application/json"
    assert "headers" not in properties
    assert delivery_info["redelivered"] is False
    await app.aclose()
