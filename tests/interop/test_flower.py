"""Flower 2.2 itself, watching a hare worker started with -E beside a Celery worker started with
-E: Flower lists both (by their events and by remote control), shows each one's tasks with
their name, arguments, state and runtime (tasks that succeed, fail and retry; the hare
worker's sync tasks run in prefork children, whose events its parent sends), revokes through
its API a task the hare worker then does not run, and terminates one it runs. Its worker
buttons that hare does not carry out answer with hare's reason.

Flower runs once for the module (`celery -A tests.interop.celery_side flower`), in a vhost of
the module's own, with `FLOWER_UNAUTHENTICATED_API` (Flower 2 refuses its API otherwise).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.compat.harness import wait_until
from tests.faults.conftest import private_vhost
from tests.interop.harness import ROOT, Fleet, _die_with_parent

pytestmark = pytest.mark.amqp

HOST = socket.gethostname()
HARE = f"hare-h1@{HOST}"
CELERY = f"c1@{HOST}"


@dataclass
class Flower:
    """A Flower process and its HTTP API."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def call(self, path: str, method: str = "GET", **form: Any) -> tuple[int, Any]:
        data = urllib.parse.urlencode(form).encode() if method == "POST" else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        text = body.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str) -> Any:
        status, body = self.call(path)
        assert status == 200, (path, status, body, self.log())
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def task(self, task_id: str) -> dict[str, Any]:
        tasks = self.get("/api/tasks")
        found: dict[str, Any] = tasks.get(task_id, {})
        return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def interop_url(amqp_url: str) -> Iterator[str]:
    """A vhost of this module's own (not the session's): Flower sees only these workers."""
    yield from private_vhost(amqp_url, "flower")


@pytest.fixture(scope="module")
def crew(fleet: Fleet) -> Fleet:
    """A hare worker (-E, prefork) on `<fleet>.hare` and the shared queue, a Celery worker
    (-E) on `<fleet>.celery` and the shared queue."""
    shared = fleet.queue("shared")
    fleet.start_hare(
        [fleet.queue("hare"), shared],
        concurrency=2,
        options=["-E", "-P", "prefork", "-n", "hare-h1@%h"],
    )
    fleet.start_celery([fleet.queue("celery"), shared], name="c1", events=True)
    fleet.wait_consuming()
    return fleet


@pytest.fixture(scope="module")
def flower(crew: Fleet) -> Iterator[Flower]:
    port = free_port()
    log_path = crew.directory / "flower.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARE_", "CELERY_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "FLOWER_UNAUTHENTICATED_API": "true",
        "INTEROP_BROKER_URL": crew.url,
        "INTEROP_CELERY_QUEUE": crew.queue("celery"),
    }
    command = [sys.executable, "-m", "celery", "-A", "tests.interop.celery_side"]
    command += ["--broker", crew.url, "flower", f"--port={port}", "--address=127.0.0.1"]
    command += ["--inspect_timeout=3000", "--persistent=False"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    watcher = Flower(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until(lambda: _answers(watcher), within=30, what="Flower answers")
        yield watcher
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(flower: Flower) -> bool:
    if flower.process.poll() is not None:
        raise AssertionError(f"Flower exited\n{flower.log()}")
    try:
        return flower.call("/healthcheck")[0] == 200
    except OSError:
        return False


def send(client: Celery, name: str, queue: str, **kwargs: Any) -> str:
    task_id = kwargs.pop("task_id", None) or str(uuid.uuid4())
    client.send_task(f"interop.{name}", kwargs=kwargs, queue=queue, task_id=task_id)
    return task_id


def settled(flower: Flower, task_id: str, states: set[str]) -> dict[str, Any]:
    """The task as Flower shows it once its state is one of `states`."""

    def shown() -> dict[str, Any]:
        task = flower.task(task_id)
        return task if task.get("state") in states else {}

    found: dict[str, Any] = wait_until(shown, what=f"task {task_id} in {states} in Flower")
    return found


def test_flower_lists_the_hare_worker_beside_the_celery_one(flower: Flower, crew: Fleet) -> None:
    def alive() -> bool:
        status = flower.get("/api/workers?status=1")  # from the events (heartbeats)
        return status.get(HARE) is True and status.get(CELERY) is True

    wait_until(alive, what="both workers alive in Flower")

    def inspected() -> dict[str, Any]:
        found: dict[str, Any] = flower.get("/api/workers?refresh=1")  # by remote control
        return found if {HARE, CELERY} <= set(found) else {}

    workers = wait_until(inspected, what="both workers inspected by Flower")
    hare = workers[HARE]
    assert hare["stats"]["pool"]["max-concurrency"] == 2
    assert hare["stats"]["pool"]["implementation"] == "hare:prefork"
    assert "interop.add" in hare["registered"]
    assert {q["name"] for q in hare["active_queues"]} == {crew.queue("hare"), crew.queue("shared")}


def test_flower_shows_the_hare_workers_tasks_with_their_states(
    flower: Flower, crew: Fleet, celery_client: Celery
) -> None:
    queue = crew.queue("hare")
    ok = send(celery_client, "add", queue, x=2, y=3, key="f-add")  # sync: in a prefork child
    boom = send(celery_client, "boom", queue, key="f-boom")
    retry = send(celery_client, "retry_once", queue, key="f-retry", countdown=600)
    added = settled(flower, ok, {"SUCCESS"})
    assert added["name"] == "interop.add" and added["worker"] == HARE
    assert "'x': 2" in added["kwargs"] and added["result"] == "5"
    assert added["runtime"] is not None and added["runtime"] >= 0
    failed = settled(flower, boom, {"FAILURE"})
    assert failed["worker"] == HARE and "ValueError" in failed["exception"]
    assert "boom f-boom" in failed["traceback"]
    retried = settled(flower, retry, {"RETRY"})
    assert retried["worker"] == HARE and retried["name"] == "interop.retry_once"


def test_a_mixed_fleet_shows_each_workers_tasks(
    flower: Flower, crew: Fleet, celery_client: Celery
) -> None:
    on_celery = send(celery_client, "record", crew.queue("celery"), key="f-celery")
    on_hare = send(celery_client, "record", crew.queue("hare"), key="f-hare")
    shared = [send(celery_client, "record", crew.queue("shared"), key=f"f-s{n}") for n in range(6)]
    assert settled(flower, on_celery, {"SUCCESS"})["worker"] == CELERY
    assert settled(flower, on_hare, {"SUCCESS"})["worker"] == HARE
    for task_id in shared:
        assert settled(flower, task_id, {"SUCCESS"})["worker"] in {HARE, CELERY}


def test_a_revoke_through_flower_is_honoured_by_the_hare_worker(
    flower: Flower, crew: Fleet, celery_client: Celery
) -> None:
    doomed = str(uuid.uuid4())
    status, _ = flower.call(f"/api/task/revoke/{doomed}", "POST")
    assert status == 200
    inspect = celery_client.control.inspect(destination=[HARE])
    wait_until(
        lambda: doomed in (inspect.revoked() or {}).get(HARE, []),
        what="the revoke known to the hare worker",
    )
    send(celery_client, "record", crew.queue("hare"), key="f-doomed", task_id=doomed)
    revoked = settled(flower, doomed, {"REVOKED"})
    assert revoked["worker"] == HARE
    assert not [e for e in crew.ledger.entries() if e.key == "f-doomed"]

    long = send(celery_client, "record", crew.queue("hare"), key="f-long", sleep_ms=60_000)
    settled(flower, long, {"STARTED"})
    status, _ = flower.call(f"/api/task/revoke/{long}", "POST", terminate="true")
    assert status == 200
    settled(flower, long, {"REVOKED"})


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/api/worker/pool/grow/{}", {"n": 1}),
        ("/api/worker/pool/autoscale/{}", {"min": 1, "max": 4}),
        ("/api/worker/queue/add-consumer/{}", {"queue": "other"}),
    ],
)
def test_flowers_buttons_hare_does_not_carry_out_say_why(
    flower: Flower, crew: Fleet, path: str, form: dict[str, Any]
) -> None:
    wait_until(lambda: HARE in flower.get("/api/workers"), what="the hare worker in Flower")
    status, body = flower.call(path.format(HARE), "POST", **form)
    assert status == 403 and "refused" in body, body
