"""`hare worker --pool prefork` on RabbitMQ, as a team migrating a Celery module runs it.

The project is a Celery module moved to hare by its imports (hare_compat), started with the
`hare worker` command: soft limits that cut a blocking call short, a hard limit that kills a
child stuck in `time.sleep(60)`, children that die (`os._exit`, SIGKILL, a 2 GB allocation
under `--max-memory-per-child`), and a drain that hands back what it could not finish. The
figures (how long the soft limit took, how soon a stuck child was killed) are asserted with
the margins the issue names; the benchmarks measure the rest.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hare.transport.amqp.transport import AmqpTransport
from tests.amqp.helpers import WorkerProcess, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]

PROJECT = """
import os
import time

from hare_compat import Celery
from hare_compat.exceptions import SoftTimeLimitExceeded

app = Celery("reports", broker=os.environ["PF_BROKER"], backend="rpc://")
app.conf.task_default_queue = os.environ["PF_QUEUE"]


def _mark(name):
    with open(os.path.join(os.environ["PF_DIR"], name), "w") as marker:
        marker.write(f"{os.getpid()} {time.time()}")


@app.task(soft_time_limit=1, time_limit=10)
def slow_report(seconds):
    try:
        time.sleep(seconds)  # standing for a slow HTTP call
        return "full"
    except SoftTimeLimitExceeded:
        return "partial"


@app.task(time_limit=2)
def stuck():
    _mark("stuck")
    time.sleep(60)


@app.task
def exit_one():
    os._exit(1)


@app.task
def sigkill():
    os.kill(os.getpid(), 9)


@app.task
def hog():
    return len(bytearray(2 * 1024**3))


@app.task
def pid():
    return os.getpid()


@app.task
def record(text, seconds):
    time.sleep(seconds)
    with open(os.path.join(os.environ["PF_DIR"], "ledger"), "a") as ledger:
        ledger.write(text + "\\n")
"""


class Project:
    def __init__(self, root: Path, url: str, unique: str) -> None:
        self.root, self.url, self.queue = root, url, f"pf-{unique}"
        package = f"pf_{unique}"
        (root / f"{package}.py").write_text(textwrap.dedent(PROJECT))
        self.env = {
            **os.environ,
            "PF_BROKER": url,
            "PF_QUEUE": self.queue,
            "PF_DIR": str(root),
            "PYTHONPATH": f"{root}{os.pathsep}{ROOT}",
        }
        os.environ.update({k: self.env[k] for k in ("PF_BROKER", "PF_QUEUE", "PF_DIR")})
        sys.path.insert(0, str(root))
        self.module: ModuleType = importlib.import_module(package)
        self.package = package

    def ledger(self) -> list[str]:
        path = self.root / "ledger"
        return path.read_text().split() if path.exists() else []

    def marker(self, name: str) -> tuple[int, float]:
        pid, at = (self.root / name).read_text().split()
        return int(pid), float(at)


@pytest.fixture
def project(amqp_url: str, unique: str, tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path, amqp_url, unique)
    yield project
    project.module.app.close()
    sys.path.remove(str(tmp_path))

    async def clean() -> None:
        transport = AmqpTransport([amqp_url])
        await transport.connect()
        try:
            await delete_queues(transport, project.queue, project.queue + ".dead")
        finally:
            await transport.close()

    asyncio.run(clean())


async def started(project: Project, *args: str) -> WorkerProcess:
    worker = WorkerProcess(
        f"{project.package}:app",
        *("-Q", project.queue, "-c", "2", *args),
        env=project.env,
        cwd=project.root,
    )
    await worker.wait_for("worker ready")
    return worker


async def get(result: Any) -> Any:
    return await asyncio.to_thread(result.get, timeout=30, propagate=False)


async def test_a_soft_limit_cuts_a_blocking_call_short(project: Project) -> None:
    worker = await started(project, "--pool", "prefork")
    try:
        begun = time.monotonic()
        result = project.module.slow_report.delay(6)
        assert await get(result) == "partial"
        took = time.monotonic() - begun
        assert took < 2.0, f"the soft limit (1 s) took {took:.2f}s to cut time.sleep(6) short"
    finally:
        assert worker.stop() == 0


async def test_a_celery_app_runs_its_sync_tasks_in_prefork_by_default(project: Project) -> None:
    worker = await started(project)
    try:
        line = await worker.wait_for("worker ready")
        assert "prefork pool" in line
        assert await get(project.module.slow_report.delay(6)) == "partial"
        assert await get(project.module.pid.delay()) != worker.process.pid
    finally:
        assert worker.stop() == 0


async def test_a_hard_limit_kills_a_stuck_child_and_the_pool_refills(project: Project) -> None:
    worker = await started(project, "--pool", "prefork")
    try:
        result = project.module.stuck.delay()
        outcome = await get(result)
        failed_at = time.time()
        assert type(outcome).__name__ == "TimeLimitExceeded", outcome
        killed, began = project.marker("stuck")
        assert failed_at - began < 2 + 1.0, f"killed {failed_at - began - 2:.2f}s after the limit"
        # The pool is whole again: two children, the killed one not among them.
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            pids |= set(await asyncio.gather(*(get(project.module.pid.delay()) for _ in range(4))))
        assert len(pids) == 2 and killed not in pids
    finally:
        assert worker.stop() == 0


@pytest.mark.parametrize(
    ("task", "named"),
    [
        ("exit_one", "exitcode 1"),
        ("sigkill", "signal 9 (SIGKILL)"),
        ("hog", "MemoryError"),
    ],
)
async def test_a_dying_task_fails_alone_and_the_next_one_runs(
    project: Project, task: str, named: str
) -> None:
    worker = await started(project, "--pool", "prefork", "--max-memory-per-child", "204800")
    try:
        outcome = await get(getattr(project.module, task).delay())
        assert isinstance(outcome, BaseException)
        assert named in f"{type(outcome).__name__}: {outcome}"
        assert isinstance(await get(project.module.pid.delay()), int)
        assert worker.process.poll() is None
    finally:
        assert worker.stop() == 0


async def test_a_drain_lets_children_finish_and_hands_back_the_rest(project: Project) -> None:
    worker = await started(project, "--pool", "prefork", "--drain-timeout", "1")
    project.module.record.delay("quick", 0.2)
    project.module.record.delay("slow", 5)
    deadline = time.monotonic() + 30
    while project.ledger() != ["quick"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the slow one is running in its child
    assert await asyncio.to_thread(worker.stop) == 0
    assert project.ledger() == ["quick"]  # the slow one was stopped, not finished
    # It went back to the queue: a new worker runs it, and the quick one never again.
    second = await started(project, "--pool", "prefork")
    try:
        project.module.record.delay("after", 0)
        deadline = time.monotonic() + 60
        while sorted(project.ledger()) != ["after", "quick", "slow"]:
            assert time.monotonic() < deadline, project.ledger()
            await asyncio.sleep(0.1)
    finally:
        assert second.stop(within=90) == 0


async def test_children_die_with_a_killed_worker(project: Project) -> None:
    """No task runs on in an orphaned child after its worker was SIGKILLed: the broker
    redelivers the message to the next worker, and only that one runs it."""
    worker = await started(project, "--pool", "prefork")
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        pids |= set(await asyncio.gather(*(get(project.module.pid.delay()) for _ in range(4))))
    project.module.record.delay("once", 3)
    await asyncio.sleep(1)  # it is sleeping in a child
    worker.process.kill()
    assert worker.stop() == -9
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"children outlived their worker: {pids}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(3)  # when an orphan would have finished
    assert project.ledger() == []
    second = await started(project, "--pool", "prefork")
    try:
        deadline = time.monotonic() + 60
        while project.ledger() != ["once"]:
            assert time.monotonic() < deadline, project.ledger()
            await asyncio.sleep(0.1)
    finally:
        assert second.stop() == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
