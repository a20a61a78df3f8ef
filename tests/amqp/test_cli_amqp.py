"""The `hare` command against a real RabbitMQ: a worker started without -Q, `inspect`,
`status` (with and without a management API) and `delayed` list/show/cancel."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hare.cli.common import EXIT_OK
from hare.transport.amqp.transport import mask_url
from tests.amqp.helpers import WorkerProcess, amqp_app, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os

from hare import Hare

app = Hare(
    os.environ["CLI_APP"],
    default_queue=os.environ["CLI_QUEUE"],
    connect_timeout=5,
    queue_type="classic",
)


@app.task(name="cli.record", queue=os.environ["CLI_QUEUE"] + ".emails")
async def record(text: str) -> None:
    with open(os.environ["CLI_LEDGER"], "a") as ledger:
        ledger.write(text + "\\n")
"""


class Project:
    """A project directory with the app above, and the environment its commands run in."""

    def __init__(self, root: Path, url: str, unique: str) -> None:
        self.root, self.url, self.queue = root, url, f"cli-{unique}"
        self.emails = self.queue + ".emails"
        self.ledger = root / "ledger.txt"
        (root / "cliapp.py").write_text(textwrap.dedent(APP))
        self.env = {
            **os.environ,
            "HARE_BROKER_URL": url,
            "CLI_APP": f"cli{unique}",
            "CLI_QUEUE": self.queue,
            "CLI_LEDGER": str(self.ledger),
            "PYTHONPATH": f"{root}{os.pathsep}{ROOT}",
        }
        self.app = amqp_app(url, default_queue=self.queue, queue_type="classic")

    def hare(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hare", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def ahare(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.hare, *args)

    def ran(self) -> list[str]:
        return self.ledger.read_text().split() if self.ledger.exists() else []


@pytest.fixture
async def project(amqp_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Project]:
    project = Project(tmp_path, amqp_url, unique)
    yield project
    transport = (await project.app.publisher()).transport
    await delete_queues(
        transport, project.queue, project.queue + ".dead", project.emails, project.emails + ".dead"
    )
    await project.app.aclose()


async def _wait(check: object, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.05)


async def test_a_worker_without_q_runs_its_tasks_queues_and_answers_inspect_and_status(
    project: Project,
) -> None:
    worker = WorkerProcess(
        "cliapp", "-l", "INFO", "-n", "clitest@%h", env=project.env, cwd=project.root
    )
    try:
        line = await worker.wait_for("connected to")
        assert (
            f"connected to {mask_url(project.url)} (vhost '/'); "
            f"consuming {project.queue}, {project.emails}\n"
        ) in line
        await project.app.asend_task("cli.record", ("sent-to-emails",), {}, queue=project.emails)
        await _wait(lambda: project.ran() == ["sent-to-emails"])

        ping = await project.ahare("inspect", "cliapp", "ping", "-d", _node(line), "-t", "10")
        assert ping.returncode == EXIT_OK, ping.stderr
        assert ping.stdout == f"{_node(line)}: pong\n"
        registered = await project.ahare(
            "inspect", "-A", "cliapp", "registered", "--json", "-d", _node(line), "-t", "10"
        )
        assert "cli.record" in json.loads(registered.stdout)[_node(line)]

        # The worker's answer has 3 s to come (a status waits for every worker that answers).
        status = await project.ahare(
            "status", "cliapp", "-t", "3", "--management-url", "http://127.0.0.1:1"
        )
        assert status.returncode == EXIT_OK, status.stderr
        rows = {row.split()[0]: row.split()[1:] for row in status.stdout.splitlines()}
        assert rows[project.emails] == ["0", "?", "1", "0"]  # ready, unacked, workers, dead
        assert rows[project.queue] == ["0", "?", "1", "0"]
        assert "unacked: unknown, no management API at http://127.0.0.1:1" in status.stdout
        assert _node(line) in status.stdout.splitlines()[1]  # other workers may answer too

        with _management({project.emails: (5, 7, 3)}) as (url, seen):
            status = await project.ahare("status", "cliapp", "-t", "3", "--management-url", url)
        rows = {row.split()[0]: row.split()[1:] for row in status.stdout.splitlines()}
        assert rows[project.emails] == ["0", "7", "3", "0"]  # ready from AMQP, the rest the API's
        assert rows[project.queue] == ["0", "?", "1", "0"]  # not in the API's answer
        assert seen == ["/api/queues/%2F", "Basic " + base64.b64encode(b"guest:guest").decode()]
    finally:
        assert worker.stop() == EXIT_OK, "".join(worker.lines)

    nobody = await project.ahare("inspect", "cliapp", "ping", "-t", "0.3", "-d", _node(line))
    assert nobody.returncode == 1
    assert nobody.stderr == "hare inspect: no worker answered within 0.3 s\n"


def _node(line: str) -> str:
    return line.split(" hare.cli: ")[1].split(" connected")[0]


class _management:  # a context manager, named as one
    """A stand-in for RabbitMQ's management API answering `/api/queues/<vhost>`."""

    def __init__(self, queues: dict[str, tuple[int, int, int]]) -> None:
        answer = json.dumps(
            [
                {"name": name, "messages_ready": r, "messages_unacknowledged": u, "consumers": c}
                for name, (r, u, c) in queues.items()
            ]
        ).encode()
        seen: list[str] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen[:] = [self.path.split("?")[0], self.headers.get("Authorization", "")]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> tuple[str, list[str]]:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}", self.seen

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_a_cancelled_delayed_task_is_discarded_by_the_worker(project: Project) -> None:
    sent = [
        await project.app.asend_task(
            "cli.record", (text,), {}, queue=project.emails, countdown=12.0
        )
        for text in ("kept", "cancelled")
    ]
    listing = await project.ahare("delayed", "list", "cliapp", "--queue", project.emails)
    assert listing.returncode == EXIT_OK, listing.stderr
    assert all(s.id in listing.stdout for s in sent), listing.stdout
    show = await project.ahare("delayed", "show", "cliapp", sent[1].id)
    assert "args:     ('cancelled',)" in show.stdout, show.stderr
    cancel = await project.ahare("delayed", "cancel", "cliapp", sent[1].id)
    assert cancel.returncode == EXIT_OK, cancel.stderr
    assert cancel.stdout.startswith(f"revoked {sent[1].id} (cli.record, due ")
    worker = WorkerProcess("cliapp", env=project.env, cwd=project.root)
    try:
        await _wait(lambda: project.ran() == ["kept"], within=30)
        await worker.wait_for("revoked: discarded", within=10)
        assert project.ran() == ["kept"]
    finally:
        assert worker.stop() == EXIT_OK, "".join(worker.lines)
