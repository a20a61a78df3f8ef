"""`/metrics` on the health server, with and without prometheus-client, and `import hare`
that never loads prometheus-client until a worker serves metrics."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hare.worker import metering
from hare.worker.health import Health, HealthServer
from tests.test_imports import run_python


async def get(port: int, path: str) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode(), body


@pytest.mark.anyio
async def test_metrics_beside_the_probes_and_501_without_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = HealthServer(0, lambda: Health(live=True, ready=True), host="127.0.0.1")
    await server.start()
    try:
        head, body = await get(server.port, "/metrics")
        assert head.startswith("HTTP/1.1 200")
        assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
        assert list(text_string_to_metric_families(body.decode()))  # the text format
        monkeypatch.setattr(metering, "available", lambda: False)
        head, body = await get(server.port, "/metrics")
        assert head.startswith("HTTP/1.1 501 Not Implemented")
        assert b"pip install 'hare-queue[metrics]'" in body
        assert (await get(server.port, "/livez"))[0].startswith("HTTP/1.1 200")
    finally:
        await server.close()


def test_no_metrics_without_the_extra_or_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from hare.testing import memory_app

    app = memory_app()
    assert metering.worker_metrics(app, None) is None  # no --health-port: nothing counted
    monkeypatch.setattr(metering, "available", lambda: False)
    assert metering.worker_metrics(app, 8080) is None
    assert metering.child_environment("/nonexistent/never-made") == {}
    assert len(app.middleware) == 0


def test_importing_hare_and_its_worker_does_not_load_prometheus_client() -> None:
    code = """
        import sys

        import hare
        import hare.cli.worker
        import hare.worker.supervisor

        print("prometheus_client" in sys.modules)
    """
    assert run_python(code).split() == ["False"]
