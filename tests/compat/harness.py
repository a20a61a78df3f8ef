"""The compat suite's machinery: variants, the audit ledger, vhosts and worker processes.

A *variant* is one way to run the example projects: `celery` imports them as written
(`shop`), `hare` imports the renamed copy (`shop_hare`, see `rewrite.py`) whose `celery`
imports go to `hare_compat`. Each (project, variant) gets a private vhost; the shop also a
Redis database of its own. Workers are real subprocesses: `celery worker` (prefork, as most
deployments run it) and `hare worker`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from tests.compat.rewrite import LIBRARY, PROJECTS_DIR, SUFFIX

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

#: Queues each project's worker consumes, and its concurrency.
WORKER_QUEUES = {"shop": "celery,priority,reports", "billing": "payments"}
CONCURRENCY = {"shop": 4, "billing": 2}
#: Redis database of the shop's result store, per variant.
REDIS_DB = {"celery": 13, "hare": 14}


def wait_until(check: Callable[[], T], *, within: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {within}s")
        time.sleep(0.05)


# -- variants --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """`celery` or `hare`: which package a project is imported as, which library it uses."""

    name: str

    @property
    def suffix(self) -> str:
        return "" if self.name == "celery" else SUFFIX

    @property
    def library(self) -> str:
        return "celery" if self.name == "celery" else LIBRARY

    def package(self, project: str) -> str:
        return project + self.suffix

    def module(self, dotted: str) -> ModuleType:
        """`module("shop.tasks")`: that project module, as this variant imports it."""
        project, _, rest = dotted.partition(".")
        return importlib.import_module(self.package(project) + ("." + rest if rest else ""))

    def lib(self, dotted: str = "") -> ModuleType:
        """`lib("exceptions")`: `celery.exceptions` or `hare_compat.exceptions`."""
        return importlib.import_module(self.library + ("." + dotted if dotted else ""))

    def task_name(self, name: str) -> str:
        """A task's name in this variant: `shop.tasks.add` -> `shop_hare.tasks.add`."""
        project, _, rest = name.partition(".")
        return self.package(project) + "." + rest


# -- the ledger --------------------------------------------------------------------------------


class Ledger:
    """Reads the JSON lines the projects' `auditlog.Audit` appends."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self, pkg: str, **match: Any) -> list[dict[str, Any]]:
        """Lines written by package `pkg` whose fields equal `match`, in file order."""
        if not self.path.exists():
            return []
        found = []
        text = self.path.read_text()
        # A writer may be half way through its line: read only complete ("\n"-ended) lines.
        complete = text[: text.rfind("\n") + 1]
        for raw in complete.splitlines():
            line = json.loads(raw)
            if line["pkg"] == pkg and all(line.get(k) == v for k, v in match.items()):
                found.append(line)
        return found

    def events(self, pkg: str, **match: Any) -> list[str]:
        return [line["event"] for line in self.lines(pkg, **match)]


# -- vhosts and stores ---------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def add_vhost(amqp_url: str, vhost: str) -> str:
    """Create `vhost` with all permissions for the URL's user; its AMQP URL."""
    rabbitmqctl("add_vhost", vhost)
    user = urlsplit(amqp_url).username or "guest"
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- worker processes ----------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One worker subprocess and its log."""

    name: str
    variant: Variant
    project: str
    process: subprocess.Popen[bytes]
    log_path: Path
    health_port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} (pid {self.pid}) log tail ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def ready(self, ledger: Ledger) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}"
            )
        if self.health_port is None:  # Celery: its worker_ready receiver wrote the ledger
            return bool(ledger.lines(self.variant.package(self.project), pid=self.pid))
        return _readyz(self.health_port)

    def wait_ready(self, ledger: Ledger, within: float = 45.0) -> None:
        try:
            wait_until(lambda: self.ready(ledger), within=within, what=f"{self.name} ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def stop(self, within: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(within)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _readyz(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            status = sock.recv(64).split()
    except OSError:
        return False
    return len(status) >= 2 and status[1] == b"200"


def worker_command(
    variant: Variant, project: str, name: str, queues: str, concurrency: int, port: int | None
) -> list[str]:
    launch = [sys.executable, "-m", "tests.compat.launch"]
    if variant.name == "celery":
        return launch + [
            "celery", "-A", f"{project}.celery:app", "worker", "-P", "prefork",
            "-c", str(concurrency), "-Q", queues, "-n", f"{name}@%h",
            "--without-gossip", "-l", "INFO",
        ]  # fmt: skip
    # The Celery app's own pool (prefork, as in Celery) unless HARE_COMPAT_POOL names one:
    # scripts/test.sh runs the hare variant again with `threads`.
    pool = os.environ.get("HARE_COMPAT_POOL")
    return launch + [
        "hare", "worker", f"{variant.package(project)}.celery:app", "-Q", queues,
        "-c", str(concurrency), "--health-port", str(port), "--loglevel", "info",
        *(["--pool", pool] if pool else []),
    ]  # fmt: skip


@dataclass
class Fleet:
    """Starts worker subprocesses on demand (one main worker per project and variant) and
    stops them all at the end of the session."""

    ledger: Ledger
    directory: Path
    started: dict[tuple[str, str, str], WorkerProcess] = field(default_factory=dict)

    def start(
        self, project: str, variant: Variant, *, name: str = "main", queues: str | None = None
    ) -> WorkerProcess:
        """Start a worker (if this name is not running yet) without waiting for it."""
        key = (project, variant.name, name)
        if key in self.started:
            return self.started[key]
        port = free_port() if variant.name == "hare" else None
        command = worker_command(
            variant, project, f"{project}-{name}", queues or WORKER_QUEUES[project],
            CONCURRENCY[project], port,
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("HARE_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(PROJECTS_DIR)])
        log_path = self.directory / f"{project}-{variant.name}-{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        worker = WorkerProcess(
            f"{variant.name} {project}-{name}", variant, project, process, log_path, port
        )
        self.started[key] = worker
        return worker

    def main(self, project: str, variant: Variant, variants: tuple[Variant, ...]) -> WorkerProcess:
        """The project's main worker for `variant`, ready; the other variants' main workers
        are started too (not awaited), so their start-up overlaps."""
        for other in variants:
            self.start(project, other)
        worker = self.start(project, variant)
        worker.wait_ready(self.ledger)
        return worker

    def stop(self, worker: WorkerProcess) -> None:
        worker.stop()
        for key, started in list(self.started.items()):
            if started is worker:
                del self.started[key]

    def close(self) -> Iterator[str]:
        """Stop every worker; yield each one's log tail (printed on a failed run)."""
        for worker in self.started.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.started.values():
            worker.stop()
            yield worker.log_tail(30)
        self.started.clear()
