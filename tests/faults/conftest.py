"""Fixtures of the fault suite: a private vhost, `hare worker` processes, a ledger, figures.

Every test runs real `hare worker` processes (`python -m hare worker tests.apps.fault_app:app`)
against the local RabbitMQ and judges them by what they leave behind: the ledger of executions
the fault app writes (see `tests/apps/fault_app.py`), exit codes, queue depths and dead letters.

The suite runs in a vhost of its own, created for the session and deleted after it, so that
`rabbitmqctl close_all_connections -p <vhost>` closes only this suite's connections and
nothing it declares outlives it. It needs `rabbitmqctl` on the broker's machine: without it the
suite is skipped locally and fails under CI, like the rest of the broker tier.

With `HARE_FAULT_FIGURES=<file>` set, each test appends one JSON line of figures to the file
(`scripts/reliability_report.py` turns them into `docs/reliability.md`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psutil
import pytest

from hare import Hare, HareError
from hare.core.priority import band_queues
from hare.core.topology import DEAD_SUFFIX
from hare.testing import eventually
from tests.apps.fault_app import Ledger, Run

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.fault_app:app"
FIGURES_ENV = "HARE_FAULT_FIGURES"

Figures = Callable[..., None]


# -- rabbitmqctl ---------------------------------------------------------------------------


def command_sync(*argv: str, timeout: float = 60.0) -> str:
    """Run a command; its output, or a RuntimeError with it if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
    return done.stdout


async def command(*argv: str, within: float = 60.0) -> str:
    """`command_sync` without blocking the event loop (producers keep publishing)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(within):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {text}")
    return text


def rabbitmqctl_sync(*args: str, timeout: float = 60.0) -> str:
    """Run `rabbitmqctl -q ARGS`; raise with its output if it fails."""
    return command_sync("rabbitmqctl", "-q", *args, timeout=timeout)


async def rabbitmqctl(*args: str, within: float = 60.0) -> str:
    """`rabbitmqctl -q ARGS` without blocking the event loop (producers keep publishing)."""
    return await command("rabbitmqctl", "-q", *args, within=within)


def _broker_is_local() -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        rabbitmqctl_sync("list_vhosts", timeout=30)
    except (RuntimeError, subprocess.TimeoutExpired, OSError):
        return False
    return True


def private_vhost(amqp_url: str, suite: str) -> Iterator[str]:
    """The AMQP URL of a vhost `hare-<suite>-<random>` of its own, deleted (with all in it)
    at the end; needs rabbitmqctl (a skip locally, a failure under CI)."""
    if not _broker_is_local():
        message = f"the {suite} suite needs rabbitmqctl for the broker at {amqp_url}"
        if os.environ.get("CI"):
            pytest.fail(message + " -- under CI that is a failure")
        pytest.skip(message)
    yield from scratch_vhost(amqp_url, suite, rabbitmqctl_sync)


def scratch_vhost(amqp_url: str, suite: str, ctl: Callable[..., str]) -> Iterator[str]:
    """A vhost `hare-<suite>-<random>` made and deleted with `ctl` (`rabbitmqctl -q ...`)."""
    vhost = f"hare-{suite}-{uuid.uuid4().hex[:8]}"
    user = urlsplit(amqp_url).username or "guest"
    ctl("add_vhost", vhost)
    try:
        ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield vhost_url(amqp_url, vhost)
    finally:
        ctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def fault_url(amqp_url: str) -> Iterator[str]:
    """The AMQP URL of a vhost of this session's own, deleted (with all in it) at the end."""
    yield from private_vhost(amqp_url, "faults")


class Broker:
    """Faults injected into the broker. The node is shared: it is always left running."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.vhost = vhost_of(url)
        self._stopped = False

    async def restart(self) -> None:
        """`rabbitmqctl stop_app` then `start_app`; return once it takes connections again."""
        self._stopped = True
        try:
            await rabbitmqctl("stop_app", within=120)
        finally:
            await rabbitmqctl("start_app", within=180)
            self._stopped = False
            await eventually(lambda: broker_answers(self.url), within=60, interval=0.1)

    async def close_connections(self) -> None:
        """Close every connection of this suite's vhost (and no one else's)."""
        await rabbitmqctl("close_all_connections", "-p", self.vhost, "hare fault test")

    def ensure_running(self) -> None:
        if self._stopped:  # the test was torn down between stop_app and start_app
            rabbitmqctl_sync("start_app", timeout=180)
            self._stopped = False


@pytest.fixture
def broker(fault_url: str) -> Iterator[Broker]:
    control = Broker(fault_url)
    try:
        yield control
    finally:
        control.ensure_running()


def vhost_url(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "/"


async def broker_answers(url: str) -> bool:
    """Whether the broker takes an AMQP connection on `url` now."""
    probe = Hare("probe", broker=url, environ={}, connect_timeout=2)
    try:
        transport = probe.make_transport()
        await transport.connect()
        await transport.close()
    except Exception:
        return False
    return True


# -- the ledger ----------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.txt")


# -- worker processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def http_status(port: int, path: str) -> int | None:
    """The status code of GET `path` on 127.0.0.1:`port`; `None` when nothing answers."""
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 else None


@dataclass
class WorkerProcess:
    """One `hare worker` command (with `--processes N`: the supervisor) and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    health_port: int
    signalled_at: float | None = None
    exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name} (pid {self.pid}) log tail ---\n" + "\n".join(
            self.log().splitlines()[-lines:]
        )

    def children(self) -> list[int]:
        """The pids of a supervisor's worker processes."""
        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def signal(self, signum: int) -> None:
        self.signalled_at = time.monotonic()
        self.process.send_signal(signum)

    async def ready(self) -> bool:
        if not self.alive:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}\n" + self.log_tail()
            )
        return await http_status(self.health_port, "/readyz") == 200

    async def wait_ready(self, within: float = 30.0) -> None:
        await eventually(self.ready, within=within, interval=0.05)

    async def wait_exit(self, within: float) -> int:
        """Wait for the process to exit (`within` only catches hangs); its exit code."""

        def exited() -> bool:
            if self.process.poll() is None:
                return False
            if self.exited_at is None:
                self.exited_at = time.monotonic()
            return True

        try:
            await eventually(exited, within=within, interval=0.02)
        except AssertionError:
            raise AssertionError(
                f"{self.name} still running {within}s after the signal\n" + self.log_tail()
            ) from None
        return self.process.returncode

    async def stop(self, within: float = 60.0) -> int:
        """SIGTERM (drain), then the exit code."""
        if self.alive:
            self.signal(signal.SIGTERM)
        return await self.wait_exit(within)


class Workers:
    """Starts `hare worker` processes of the fault app; kills what is left at teardown."""

    def __init__(self, url: str, ledger: Ledger, directory: Path) -> None:
        self.url = url
        self.ledger = ledger
        self._directory = directory
        self.started: list[WorkerProcess] = []

    def start(
        self,
        queue: str,
        *,
        name: str | None = None,
        queue_type: str = "quorum",
        concurrency: int = 16,
        processes: int = 1,
        drain_timeout: float = 30.0,
        delivery_limit: int | None = None,
        url: str | None = None,
        app: str = APP,
        args: Sequence[str] = (),
    ) -> WorkerProcess:
        """Start a worker of `app` (the fault app by default) for `queue` (comma-separated:
        several), on `url` or the suite's; `args` more of `hare worker`'s options."""
        name = name or f"worker-{len(self.started) + 1}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HARE_")}
        env |= {
            "HARE_BROKER_URL": url or self.url,
            "HARE_QUEUE_TYPE": queue_type,
            "PYTHONPATH": str(ROOT),
            "FAULT_LEDGER": str(self.ledger.path),
            "FAULT_QUEUE": queue.split(",")[0],
        }
        if delivery_limit is not None:
            env["HARE_DELIVERY_LIMIT"] = str(delivery_limit)
        command = [sys.executable, "-m", "hare", "worker", app, "-Q", queue, *args]
        command += ["-c", str(concurrency), "--drain-timeout", str(drain_timeout)]
        command += ["--health-port", str(port), "--loglevel", "warning"]
        if processes > 1:
            command += ["--processes", str(processes)]
        log_path = self._directory / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        worker = WorkerProcess(name, process, log_path, port)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            if worker.alive:
                children = worker.children()
                worker.process.send_signal(signal.SIGTERM)
                try:
                    worker.process.wait(20)
                except subprocess.TimeoutExpired:
                    for pid in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    worker.process.kill()
                    worker.process.wait()
            print(worker.log_tail(60))


@pytest.fixture
def workers(fault_url: str, ledger: Ledger, tmp_path: Path) -> Iterator[Workers]:
    launcher = Workers(fault_url, ledger, tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


# -- producing -----------------------------------------------------------------------------


def producer_app(url: str, queue: str, *, queue_type: str = "quorum", **settings: Any) -> Hare:
    """An app that publishes to `queue`, declared as the workers declare it."""
    settings |= {"default_queue": queue, "queue_type": queue_type, "connect_timeout": 5}
    return Hare("fault-producer", broker=url, environ={}, **settings)


#: One task to publish: (task name, key, milliseconds it runs).
Job = tuple[str, str, int]


def jobs(prefix: str, n: int, low: int, high: int, *, seed: int = 4) -> list[Job]:
    """`n` jobs keyed `<prefix><i>`, async and sync in turn by pairs, of `low`-`high` ms."""
    rng = random.Random(seed)
    return [
        ("fault.work_sync" if i // 2 % 2 else "fault.work", f"{prefix}{i}", rng.randint(low, high))
        for i in range(n)
    ]


async def publish_jobs(
    app: Hare, todo: Sequence[Job], *, queues: Sequence[str] = (), batch: int = 250
) -> None:
    """Publish every job (task id = its key), each confirmed by the broker.

    With `queues`, job i goes to `queues[i % len(queues)]`, else to the app's default queue.
    """
    for first in range(0, len(todo), batch):
        await asyncio.gather(
            *(
                app.asend_task(
                    task,
                    [key, ms],
                    task_id=key,
                    queue=queues[i % len(queues)] if queues else None,
                )
                for i, (task, key, ms) in enumerate(todo[first : first + batch], start=first)
            )
        )


async def produce_paced(
    app: Hare,
    prefix: str,
    stop: asyncio.Event,
    sent: dict[str, float],
    *,
    rate: float,
    loops: int,
    limit: int | None = None,
) -> int:
    """Publish `fault.work` tasks of 5-30 ms keyed `<prefix><n>`, `rate` a second from `loops`
    concurrent loops (each waits for its confirm), until `stop` is set or `limit` were sent.

    `sent` gets each confirmed key with the moment its publish returned; the result is how
    many publishes failed (their keys are not in `sent`)."""
    counter = itertools.count()
    failures = 0
    interval = loops / rate

    async def loop(n: int) -> None:
        nonlocal failures
        rng = random.Random(n)
        due = time.monotonic()
        while not stop.is_set():
            number = next(counter)
            if limit is not None and number >= limit:
                return
            key = f"{prefix}{number}"
            try:
                await app.asend_task("fault.work", [key, rng.randint(5, 30)], task_id=key)
            except HareError:
                failures += 1
            else:
                sent[key] = time.monotonic()
            due += interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    await asyncio.gather(*(loop(n) for n in range(loops)))
    return failures


async def finish(
    ledger: Ledger, keys: set[str], started: Sequence[WorkerProcess], within: float = 60.0
) -> tuple[list[bool], list[int]]:
    """Wait (up to `within`) until every key ran to its end, and a second more for a late
    duplicate; then which workers were still alive, and their exit codes after SIGTERM.
    What never ran is for the caller to report (with the ledger)."""
    try:
        await eventually(lambda: keys <= ledger.refresh().ended(), within=within)
    except AssertionError:
        pass  # the caller reports what is missing
    await asyncio.sleep(1.0)
    alive = [worker.alive for worker in started]
    return alive, [await worker.stop() for worker in started]


@pytest.fixture
async def cleanup(fault_url: str) -> AsyncIterator[list[str]]:
    """Queue names to delete (with their dead-letter queues) after the test."""
    queues: list[str] = []
    yield queues
    if not queues:
        return
    app = Hare("fault-cleanup", broker=fault_url, environ={}, connect_timeout=10)
    transport = (await app.publisher()).transport
    try:
        for queue in queues:  # each with its priority band, which a worker declared
            for name in band_queues(queue):
                await transport.delete_queue(name)
                await transport.delete_queue(name + DEAD_SUFFIX)
    finally:
        await app.aclose()


# -- figures -------------------------------------------------------------------------------


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """`figures(scenario, **values)`: append one JSON line to $HARE_FAULT_FIGURES, if set."""

    def record(scenario: str, **values: Any) -> None:
        path = os.environ.get(FIGURES_ENV)
        if not path:
            return
        line = json.dumps({"test": request.node.nodeid, "scenario": scenario, **values})
        with open(path, "a") as file:
            file.write(line + "\n")

    return record


def running_in(ledger: Ledger, pid: int, moment: float) -> list[Run]:
    """The runs process `pid` had started and not finished at `moment`."""
    return [
        run
        for run in ledger.of_pid(pid)
        if run.started <= moment and (run.ended is None or run.ended > moment)
    ]


async def wait_mid_run(ledger: Ledger, pid: int, done: int, within: float = 60.0) -> None:
    """Wait until `done` tasks finished and process `pid` is running some."""

    def mid_run() -> bool:
        ledger.refresh()
        if len(ledger.ended()) < done:
            return False
        return any(run.ended is None for run in ledger.of_pid(pid))

    await eventually(mid_run, within=within, interval=0.01)


async def wait_all_ended(ledger: Ledger, keys: set[str], within: float = 90.0) -> None:
    def done() -> bool:
        return keys <= ledger.refresh().ended()

    try:
        await eventually(done, within=within, interval=0.05)
    except AssertionError:
        missing = sorted(keys - ledger.ended())
        raise AssertionError(f"{len(missing)} task(s) never finished: {missing[:20]}") from None
