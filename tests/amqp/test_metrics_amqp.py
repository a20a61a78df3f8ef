"""`hare worker --health-port` serves Prometheus metrics at `/metrics` (issue 21): the real
entry point in a process of its own, tasks that succeed, fail and retry, the page scraped over
HTTP and parsed with prometheus-client's parser; then `--processes 2`, whose supervisor adds up
its children's counts."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hare import Hare
from tests.amqp.helpers import WorkerProcess, amqp_app, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os

from hare import Hare, Retry, context

app = Hare("metered", default_queue=os.environ["METRICS_QUEUE"], queue_type="classic")


@app.task(name="m.ok")
async def ok() -> int:
    return 1


@app.task(name="m.bad", max_retries=0)
async def bad() -> None:
    raise ValueError("no")


@app.task(name="m.flaky", max_retries=3)
async def flaky() -> None:
    current = context.current()
    if current is not None and current.retries == 0:
        raise Retry(countdown=1, exc=ValueError("again"))


@app.task(name="m.sync_ok")
def sync_ok() -> int:
    return 1
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str, str]:
    """Status, content type and body of GET `path`; status 0 while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status), answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers["Content-Type"], exc.read().decode()
    except urllib.error.URLError:
        return 0, "", ""


def scrape(port: int) -> Samples:
    status, kind, text = _get(port, "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4"), (status, kind)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def tasks(samples: Samples, task: str, outcome: str) -> float:
    """`hare_tasks_total` of `task` and `outcome`, over every queue."""
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "hare_tasks_total"
        and ("task", task) in labels
        and ("outcome", outcome) in labels
    )


def total(samples: Samples, name: str) -> float:
    return sum(value for (found, _), value in samples.items() if found == name)


class Metered:
    """A project with the app above and a producer on its queue."""

    def __init__(self, root: Path, url: str, unique: str) -> None:
        self.root, self.queue = root, f"metrics-{unique}"
        (root / "metered_app.py").write_text(textwrap.dedent(APP))
        self.env = {
            **os.environ,
            "HARE_BROKER_URL": url,
            "METRICS_QUEUE": self.queue,
            "PYTHONPATH": f"{root}{os.pathsep}{ROOT}",
        }
        self.producer: Hare = amqp_app(url, default_queue=self.queue, queue_type="classic")

    def worker(self, port: int, *args: str) -> WorkerProcess:
        health = ("--health-port", str(port))
        return WorkerProcess("metered_app:app", *health, *args, env=self.env, cwd=self.root)

    async def send(self, name: str, times: int = 1) -> None:
        for _ in range(times):
            await self.producer.asend_task(name, queue=self.queue)


@pytest.fixture
async def project(amqp_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Metered]:
    project = Metered(tmp_path, amqp_url, unique)
    yield project
    transport = (await project.producer.publisher()).transport
    await delete_queues(transport, project.queue, project.queue + ".dead")
    await project.producer.aclose()


async def until_scraped(port: int, done: object, within: float = 12.0) -> Samples:
    """Scrape `port` until `done(samples)` holds; the samples."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        status, _, _ = await asyncio.to_thread(_get, port, "/readyz")
        if status == 200:
            samples = await asyncio.to_thread(scrape, port)
            if done(samples):  # type: ignore[operator]
                return samples
        assert loop.time() < deadline, "the metrics never showed it"
        await asyncio.sleep(0.1)


async def test_one_worker_counts_what_it_ran(project: Metered) -> None:
    port = _free_port()
    worker = project.worker(port, "-c", "4")
    try:
        await until_scraped(port, lambda samples: True)
        await project.send("m.ok", 5)
        await project.send("m.bad", 2)
        await project.send("m.flaky")
        samples = await until_scraped(
            port,
            lambda s: (
                tasks(s, "m.ok", "succeeded") + tasks(s, "m.flaky", "succeeded") == 6
                and tasks(s, "m.bad", "dead_lettered") == 2
            ),
        )
        assert _get(port, "/livez")[0] == 200  # the probes answer beside it
        assert _get(port, "/nowhere")[0] == 404
    finally:
        assert worker.stop() == 0
    assert tasks(samples, "m.ok", "received") == tasks(samples, "m.ok", "started") == 5
    assert tasks(samples, "m.bad", "failed") == 2
    assert tasks(samples, "m.flaky", "retried") == 1
    assert tasks(samples, "m.flaky", "received") == 2
    assert total(samples, "hare_task_run_seconds_count") == 9
    assert total(samples, "hare_task_lateness_seconds_count") == 1  # the retry had a due time
    assert total(samples, "hare_tasks_running") == 0
    # Two dead letters and a retry were published and confirmed, each timed.
    assert tasks(samples, "m.ok", "failed") == 0
    confirmed = total(samples, "hare_publish_confirm_seconds_count")
    assert confirmed >= 3
    info = [labels for (name, labels), _ in samples.items() if name == "hare_worker_info"]
    assert len(info) == 1 and ("concurrency", "4") in info[0]
    assert ("hare_ladder_backlog", frozenset()) in samples


async def test_a_supervisor_adds_up_its_processes(project: Metered) -> None:
    port = _free_port()
    worker = project.worker(port, "--processes", "2", "-c", "2", "-P", "prefork")
    try:
        await until_scraped(port, lambda samples: True)
        await project.send("m.sync_ok", 10)
        samples = await until_scraped(port, lambda s: tasks(s, "m.sync_ok", "succeeded") >= 10)
    finally:
        assert worker.stop() == 0
    assert tasks(samples, "m.sync_ok", "succeeded") == 10
    assert tasks(samples, "m.sync_ok", "received") == 10
    assert total(samples, "hare_task_run_seconds_count") == 10
    assert total(samples, "hare_tasks_running") == 0
    pids = {
        dict(labels)["pid"] for (name, labels), _ in samples.items() if name == "hare_worker_info"
    }
    assert len(pids) == 2  # one series per live worker process
