"""Health probes and the supervisor's child command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from hare.worker.health import Health, HealthServer, read_status, worker_health, write_status
from hare.worker.supervisor import child_command


@pytest.mark.parametrize(
    ("state", "down_for", "live", "ready"),
    [
        ("starting", None, True, False),
        ("consuming", None, True, True),
        ("reconnecting", 10.0, True, False),
        ("reconnecting", 301.0, False, False),  # past the reconnect budget: restart the pod
        ("draining", None, True, False),
        ("stopped", None, False, False),
    ],
)
def test_worker_health(state: str, down_for: float | None, live: bool, ready: bool) -> None:
    health = worker_health(state, down_for)
    assert (health.live, health.ready) == (live, ready)
    assert health.detail["state"] == state


def test_status_files_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "w.json")
    assert read_status(path) is None
    write_status(path, Health(live=True, ready=False, detail={"state": "reconnecting"}))
    assert read_status(path) == Health(live=True, ready=False, detail={"state": "reconnecting"})


def test_child_command_drops_the_supervisor_options() -> None:
    argv = ["worker", "shop:app", "--processes", "4", "-Q", "a,b", "--health-port=8080", "-c", "8"]
    assert child_command(argv) == [
        sys.executable,
        "-m",
        "hare",
        "worker",
        "shop:app",
        "-Q",
        "a,b",
        "-c",
        "8",
    ]


async def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


@pytest.mark.anyio
async def test_health_server_answers_the_probes() -> None:
    state = {"health": Health(live=True, ready=False, detail={"state": "starting"})}
    server = HealthServer(0, lambda: state["health"], host="127.0.0.1")
    await server.start()
    try:
        assert (await get(server.port, "/livez"))[0] == 200
        status, body = await get(server.port, "/readyz")
        assert status == 503 and body["state"] == "starting"
        state["health"] = Health(live=True, ready=True, detail={"state": "consuming"})
        assert (await get(server.port, "/readyz"))[0] == 200
        assert (await get(server.port, "/nope"))[0] == 404
    finally:
        await server.close()
