"""A mixed fleet on one RabbitMQ: real Celery worker processes, `hare worker` processes, a ledger.

Used by `tests/interop` and meant for the compat suite too. A `Fleet` belongs to one test
module: it names queues that no other module uses, starts worker subprocesses of both kinds
(all sharing one ledger file, `tests/interop/ledger.py`), waits until they consume, and stops
them at the end. Waiting is by polling with a bound; a timeout reports the workers' log tails.

The broker is reached three ways: hare itself (clients, queue reads), py-amqp (Celery's own AMQP
client: consumer counts by passive declare, and raw reads that must see what a Celery worker
sees) and `rabbitmqctl` (unacknowledged counts, which AMQP does not report).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp

from hare.testing import eventually
from tests.faults.conftest import rabbitmqctl_sync
from tests.interop.ledger import ENV as LEDGER_ENV
from tests.interop.ledger import Entry, Ledger

ROOT = Path(__file__).resolve().parents[2]
CELERY_APP = "tests.interop.celery_side"
HARE_APP = "tests.interop.hare_side:app"

__all__ = (
    "Fleet",
    "WorkerProcess",
    "amqp_connection",
    "close_celery",
    "consumer_count",
    "queue_counts",
    "vhost_of",
)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the test process dies, however it dies, so
    no worker outlives an interrupted run (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "/"


@contextlib.contextmanager
def amqp_connection(url: str) -> Iterator[Any]:
    """A py-amqp connection to `url` (py-amqp is Celery's client: it reads what Celery reads)."""
    parts = urlsplit(url)
    connection = amqp.Connection(
        host=f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost_of(url),
        connect_timeout=5,
    )
    connection.connect()
    try:
        yield connection
    finally:
        connection.close()


def consumer_count(connection: Any, queue: str) -> int:
    """Consumers of `queue` now (0 when it does not exist yet)."""
    channel = connection.channel()
    try:
        _, _, consumers = channel.queue_declare(queue, passive=True)
    except amqp.exceptions.NotFound:
        return 0  # the broker closed the channel
    channel.close()
    return int(consumers)


def queue_counts(url: str) -> dict[str, tuple[int, int]]:
    """`{queue: (ready, unacknowledged)}` for every queue of `url`'s vhost, by rabbitmqctl."""
    output = rabbitmqctl_sync(
        "list_queues", "-p", vhost_of(url), "name", "messages_ready", "messages_unacknowledged"
    )
    counts = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit():
            counts[parts[0]] = (int(parts[1]), int(parts[2]))
    return counts


def close_celery(app: Any) -> None:
    """Close a Celery client app, with the connection its rpc result consumer opened (which
    `Celery.close()` leaves open)."""
    backend = getattr(app._local, "backend", None)
    consumer = getattr(backend, "result_consumer", None)
    connection = getattr(consumer, "_connection", None)
    if connection is not None:
        connection.close()
    app.close()


@dataclass
class WorkerProcess:
    """One worker subprocess (Celery or hare) and its log file."""

    kind: str  # "celery" or "hare"
    name: str
    queues: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        body = "\n".join(self.log().splitlines()[-lines:])
        state = "running" if self.alive else f"exited {self.process.returncode}"
        return f"--- {self.kind} worker {self.name} ({state}) log tail ---\n{body}"

    def stop(self, within: float = 20.0) -> None:
        """SIGTERM (both kinds drain on it), then SIGKILL if it is still there after `within`."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(within)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Fleet:
    """The workers, queue names and ledger of one test module, on one vhost."""

    url: str
    directory: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.directory / "ledger.jsonl")

    def queue(self, role: str) -> str:
        """A queue name of this fleet's own."""
        return f"interop.{self.token}.{role}"

    # -- starting workers --------------------------------------------------------------------

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HARE_", "CELERY_", "INTEROP_"))
        }
        env |= {"PYTHONPATH": str(ROOT), LEDGER_ENV: str(self.ledger.path), **extra}
        return env

    def _spawn(
        self, kind: str, name: str, queues: Sequence[str], command: list[str], env: dict[str, str]
    ) -> WorkerProcess:
        log_path = self.directory / f"{kind}-{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        worker = WorkerProcess(kind, name, tuple(queues), process, log_path)
        self.workers.append(worker)
        return worker

    def start_celery(
        self, queues: Sequence[str], *, name: str = "w1", concurrency: int = 4, events: bool = False
    ) -> WorkerProcess:
        """Start a real Celery worker (thread pool) on `queues`, with task events (-E) if
        `events`; `wait_consuming` waits for it."""
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            CELERY_APP,
            "worker",
            *(["-E"] if events else []),
        ]
        command += ["-P", "threads", "-c", str(concurrency), "-n", f"{name}@%h"]
        command += ["-Q", ",".join(queues), "-l", "INFO", "--without-gossip", "--without-mingle"]
        # Not --without-heartbeat: with it, a warm or cold shutdown takes 7-10 s instead of 1.3
        # (measured, Celery 5.7); task events are off unless `events` (-E).
        env = self._env({"INTEROP_BROKER_URL": self.url, "INTEROP_CELERY_QUEUE": queues[0]})
        return self._spawn("celery", name, queues, command, env)

    def start_hare(
        self,
        queues: Sequence[str],
        *,
        name: str = "h1",
        concurrency: int = 8,
        queue_type: str | None = "classic",
        results: str | None = "rpc://",
        settings: Mapping[str, str] | None = None,
        app: str = HARE_APP,
        options: Sequence[str] = (),
    ) -> WorkerProcess:
        """Start a `hare worker` on `queues`; `wait_consuming` waits for it. `settings` are more
        hare settings by name (`{"delays": "eta-header"}` becomes `HARE_DELAYS=eta-header`);
        `queue_type=None` leaves hare's default; `app` is the worker's app path; `options` more
        `hare worker` options (`["-E", "-P", "prefork"]`)."""
        command = [sys.executable, "-m", "hare", "worker", app, "-Q", ",".join(queues), *options]
        command += ["-c", str(concurrency), "--drain-timeout", "5", "--loglevel", "info"]
        extra = {
            "HARE_BROKER_URL": self.url,
            "INTEROP_BROKER_URL": self.url,
            "INTEROP_HARE_QUEUE": queues[0],
            "INTEROP_COMPAT_QUEUE": queues[0],
            "INTEROP_HARE_RESULTS": results or "",
        }
        if queue_type is not None:
            extra["HARE_QUEUE_TYPE"] = queue_type
        else:
            extra["INTEROP_HARE_DEFAULTS"] = "1"
        extra |= {"HARE_" + key.upper(): value for key, value in (settings or {}).items()}
        return self._spawn("hare", name, queues, command, self._env(extra))

    def wait_consuming(self, within: float = 60.0) -> None:
        """Block until every started worker consumes each of its queues (a shared queue: as
        many consumers as workers that share it)."""
        wanted: dict[str, int] = {}
        for worker in self.workers:
            for queue in worker.queues:
                wanted[queue] = wanted.get(queue, 0) + 1
        deadline = time.monotonic() + within
        with amqp_connection(self.url) as connection:
            while True:
                for worker in self.workers:
                    if not worker.alive:
                        raise AssertionError(f"a worker exited early\n{self.logs()}")
                short = {q: n for q, n in wanted.items() if consumer_count(connection, q) < n}
                if not short:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"not consumed within {within}s: {short}\n{self.logs()}")
                time.sleep(0.1)

    def close(self, within: float = 20.0) -> None:
        """Stop every worker: SIGTERM to all at once (both kinds drain), SIGKILL to stragglers."""
        for worker in self.workers:
            if worker.alive:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        for worker in self.workers:
            worker.stop(max(0.1, deadline - time.monotonic()))

    def logs(self, lines: int = 30) -> str:
        return "\n".join(worker.log_tail(lines) for worker in self.workers)

    # -- waiting -----------------------------------------------------------------------------

    async def until(self, check: Callable[[], Any], *, within: float = 30.0, what: str = "") -> Any:
        """Poll `check` until it returns something truthy; on timeout fail with the logs."""
        try:
            return await eventually(check, within=within, interval=0.05)
        except AssertionError:
            raise AssertionError(
                f"{what or 'condition'} not met within {within}s\n{self.logs()}"
            ) from None

    async def runs(self, key: str, count: int = 1, *, within: float = 30.0) -> list[Entry]:
        """Wait until `key` ran `count` times; its ledger entries, in the order they started."""

        def enough() -> list[Entry]:
            found = self.ledger.of(key)
            return found if len(found) >= count else []

        return list(await self.until(enough, within=within, what=f"{count} run(s) of {key}"))
