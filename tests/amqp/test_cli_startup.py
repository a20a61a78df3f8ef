"""`hare worker` started before its broker: it waits, says why, and serves once the broker is
there; `--no-startup-retry` exits 3 at once (issue 17, point 7).

The worker is the real `hare` entry point in a process of its own. Its broker URL names a
port where nothing listens at first; the test then opens that port as a TCP relay to the
test RabbitMQ, which is, from the worker's side, a broker that started late.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hare import Hare
from hare.testing import eventually
from tests.amqp.helpers import delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

APP = """
from pathlib import Path

from hare import Hare

app = Hare("late", broker={broker!r}, default_queue={queue!r})


@app.task(name="late.touch")
def touch(path: str) -> None:
    Path(path).write_text("ran")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def relay(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """Listen on `port` and pipe every connection to `target` (the broker, arriving late)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except urllib.error.URLError:
        return 0  # not listening yet


def _worker(tmp_path: Path, broker: str, queue: str, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "late_app.py").write_text(textwrap.dedent(APP.format(broker=broker, queue=queue)))
    with (tmp_path / "worker.log").open("w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "hare", "worker", "late_app:app", "-c", "2", *extra],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


async def test_a_worker_started_before_its_broker_serves_once_it_is_there(
    amqp_url: str, unique: str, tmp_path: Path
) -> None:
    port, health = _free_port(), _free_port()
    parts = urlsplit(amqp_url)
    late = f"amqp://{parts.username}:{parts.password}@127.0.0.1:{port}{parts.path or '/'}"
    process = _worker(tmp_path, late, unique, "--health-port", str(health))
    log = tmp_path / "worker.log"
    try:
        await eventually(lambda: log.read_text().count("broker unavailable") >= 2, within=30)
        assert "connection refused at 127.0.0.1" in log.read_text()
        assert process.poll() is None  # still there, waiting
        assert _status(health, "/livez") == 200 and _status(health, "/readyz") == 503
        async with relay(port, (parts.hostname or "127.0.0.1", parts.port or 5672)):
            await _serves_then_drains(process, health, amqp_url, unique, tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
        await _delete(amqp_url, unique)


async def test_no_startup_retry_exits_3_at_once(tmp_path: Path, unique: str) -> None:
    port = _free_port()
    broker = f"amqp://guest:guest@127.0.0.1:{port}/"
    process = _worker(tmp_path, broker, unique, "--no-startup-retry")
    code = await asyncio.to_thread(process.wait, 60)
    assert code == 3
    assert f"connection refused at 127.0.0.1:{port}" in (tmp_path / "worker.log").read_text()


async def _serves_then_drains(
    process: subprocess.Popen[str], health: int, url: str, queue: str, tmp_path: Path
) -> None:
    """Once ready, the worker runs a task sent to it, then drains on SIGTERM and exits 0."""
    await eventually(lambda: _status(health, "/readyz") == 200, within=30)
    producer = Hare("producer", broker=url, default_queue=queue)
    try:
        marker = tmp_path / "ran"
        await producer.asend_task("late.touch", (str(marker),))
        await eventually(marker.exists, within=30)
    finally:
        await producer.aclose()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0


async def _delete(url: str, queue: str) -> None:
    app = Hare("late-cleanup", broker=url)
    try:
        transport = (await app.publisher()).transport
        await delete_queues(transport, queue, queue + ".dead")
    finally:
        await app.aclose()


async def test_debug_logs_show_hare_not_aiormq_frames(
    amqp_url: str, unique: str, tmp_path: Path
) -> None:
    health = _free_port()
    process = _worker(tmp_path, amqp_url, unique, "-l", "DEBUG", "--health-port", str(health))
    log = tmp_path / "worker.log"
    try:
        await _serves_then_drains(process, health, amqp_url, unique, tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
        await _delete(amqp_url, unique)
    lines = log.read_text().splitlines()
    assert any(" DEBUG hare." in line for line in lines), lines[:20]
    assert not [line for line in lines if " aiormq" in line or " pamqp" in line]
