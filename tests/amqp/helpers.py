"""Helpers for tests on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hare import Hare
from hare.core.envelope import Delivery
from hare.core.priority import band_queues
from hare.core.topology import DEAD_SUFFIX
from hare.transport.base import Transport


def amqp_app(url: str, **settings: Any) -> Hare:
    return Hare("tests", broker=url, environ={}, connect_timeout=5, **settings)


async def take_all(transport: Transport, queue: str) -> list[Delivery]:
    got = []
    while (delivery := await transport.get(queue)) is not None:
        await transport.ack(delivery)
        got.append(delivery)
    return got


async def delete_queues(transport: Transport, *names: str) -> None:
    """Delete `names`, and the priority band (`<name>.high`, `<name>.high.dead`) a worker
    declared beside each work queue: a test's queues must not pile up on the shared broker."""
    for name in names:
        await transport.delete_queue(name)
        if name.endswith(DEAD_SUFFIX):
            continue
        for band in band_queues(name)[1:]:
            await transport.delete_queue(band)
            await transport.delete_queue(band + DEAD_SUFFIX)


class WorkerProcess:
    """`hare worker APP ARGS...` as a subprocess in `cwd` with `env`, its log read as it
    comes (`lines`)."""

    def __init__(self, app: str, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hare", "worker", app, *args],
            env=env,
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    async def wait_for(self, words: str, within: float = 60.0) -> str:
        """The first log line containing `words`, waited for while the worker runs."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if words in line:
                    return line
            assert self.process.poll() is None, "".join(self.lines)
            await asyncio.sleep(0.05)
        raise AssertionError(f"never saw {words!r}:\n{''.join(self.lines)}")

    def stop(self, within: float = 60) -> int:
        """SIGTERM (unless it already exited); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=within)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


async def broker_version(url: str) -> tuple[int, ...]:
    """The RabbitMQ version at `url`, from the connection's server properties (e.g. (4, 0, 5))."""
    import aiormq

    connection = await aiormq.connect(url)
    try:
        raw = connection.server_properties.get("version", b"0")
    finally:
        await connection.close()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return tuple(int(part) for part in text.split("+")[0].split(".") if part.isdigit())
