"""What the dashboard's browser test and scripts/dashboard_screenshots.py share: `hare dashboard`
as a subprocess, and task events published as a Celery worker started with -E publishes them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hare import Hare
from hare.core.envelope import Envelope, Properties
from hare.core.topology import Exchange

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.dashboard_app:app"


class DashboardProcess:
    """`hare dashboard APP ARGS...` as a subprocess; `url` once it listens."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hare", "dashboard", APP, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    async def url(self, within: float = 30) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if " on http://" in line:
                    return line.split(" on ", 1)[1].split()[0].rstrip("/")
            assert self.process.poll() is None, "".join(self.lines)
            await asyncio.sleep(0.05)
        raise AssertionError("".join(self.lines))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def celery_task_events(
    task_id: str, name: str, args: str, outcome: dict[str, Any], host: str = "celery@legacy-1"
) -> list[dict[str, Any]]:
    """The events a Celery worker started with -E sends for one task (received, started, then
    `outcome`: its `type` and fields), built by Celery's own `Event`."""
    from celery.events.event import Event

    common = {"hostname": host, "pid": 4242, "clock": 7, "utcoffset": 0}
    last = dict(outcome)
    return [
        Event("task-received", uuid=task_id, name=name, args=args, kwargs="{}", retries=0,
              root_id=task_id, parent_id=None, **common),
        Event("task-started", uuid=task_id, **common),
        Event(last.pop("type"), uuid=task_id, **last, **common),
    ]  # fmt: skip


async def publish_events(client: Hare, events: list[dict[str, Any]]) -> None:
    """Publish `events` on the `celeryev` exchange as Celery's event dispatcher does."""
    transport = (await client.publisher()).transport
    await transport.declare_exchange(Exchange(name="celeryev", type="topic"))
    for event in events:
        envelope = Envelope(
            exchange="celeryev",
            routing_key=event["type"].replace("-", "."),
            body=json.dumps(event).encode(),
            properties=Properties(content_type="application/json", content_encoding="utf-8"),
        )
        await transport.publish(envelope, mandatory=False)
