"""`hare worker --processes N`: N independent worker processes, supervised.

Each child is a plain `hare worker` with its own connection and event loop; the children
share nothing and need no coordination (the broker hands each its own deliveries). The
supervisor restarts a child that exits unexpectedly (crash, OOM kill) with a growing pause,
forwards SIGTERM/SIGINT to every child so they all drain, and exits 0 when all of them exited
0. A second signal kills the children at once. With `--health-port` it serves the probes for
all children, which report their state in status files, and `/metrics` for all of them: each
child writes its metrics to files in a directory of the supervisor's, made fresh at its start,
which `/metrics` adds up (`hare.worker.metering`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from hare.worker.health import Health, HealthServer, read_status
from hare.worker.metering import child_environment, metrics_page, process_exited

__all__ = ("PROCESS_INDEX_ENV", "STATUS_ENV", "Supervisor")

logger = logging.getLogger("hare.supervisor")

#: A child that ran at least this long before exiting restarts after the shortest pause.
STABLE_AFTER = 60.0
FIRST_PAUSE, MAX_PAUSE = 1.0, 30.0
#: How long a restarting child may be down before `/livez` reports the pod as dead.
RESTART_BUDGET = 120.0

STATUS_ENV = "HARE_STATUS_FILE"
#: A child's index among the supervisor's processes (0, 1, ...): `-n`'s `%i`.
PROCESS_INDEX_ENV = "HARE_PROCESS_INDEX"


@dataclass
class _Child:
    index: int
    status_file: str
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    down_since: float | None = field(default=None)


class Supervisor:
    """Runs `processes` copies of the worker command `child_argv` and keeps them running."""

    def __init__(
        self, child_argv: Sequence[str], processes: int, *, health_port: int | None = None
    ) -> None:
        self._argv = list(child_argv)
        self._directory = tempfile.mkdtemp(prefix="hare-supervisor-")
        self._children = [
            _Child(i, os.path.join(self._directory, f"worker-{i}.json")) for i in range(processes)
        ]
        self._health_port = health_port
        #: Where the children's metrics go, when the supervisor serves them.
        self._metrics = os.path.join(self._directory, "metrics")
        self._metrics_env = child_environment(self._metrics) if health_port else {}
        self._stopping = False
        self._signals = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        page = functools.partial(metrics_page, self._metrics)
        health = (
            HealthServer(self._health_port, self.health, metrics=page)
            if self._health_port
            else None
        )
        if health is not None:
            await health.start()
        try:
            codes = await asyncio.gather(*(self._keep(child) for child in self._children))
        finally:
            if health is not None:
                await health.close()
        failed = [code for code in codes if code != 0]
        logger.warning(
            "all %d worker processes stopped%s",
            len(codes),
            f"; exit codes {codes}" if failed else "",
        )
        return 0 if not failed else 1

    async def _keep(self, child: _Child) -> int:
        """Run one child until a shutdown; restart it whenever it stops on its own."""
        loop = asyncio.get_running_loop()
        pause = FIRST_PAUSE
        while True:
            # A session of its own: a signal sent to the terminal's or the supervisor's process
            # group (Ctrl-C) reaches the child only once, forwarded by the supervisor, instead
            # of twice, which would mean "stop at once".
            child.process = await asyncio.create_subprocess_exec(
                *self._argv,
                env={
                    **os.environ,
                    **self._metrics_env,
                    STATUS_ENV: child.status_file,
                    PROCESS_INDEX_ENV: str(child.index),
                },
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            child.started_at = loop.time()
            child.down_since = None
            logger.info("worker process %d started (pid %d)", child.index, child.process.pid)
            code = await child.process.wait()
            if self._metrics_env:  # its gauges stop counting; its counts stay
                process_exited(child.process.pid, self._metrics)
            if self._stopping:
                return code
            child.down_since = loop.time()
            ran = loop.time() - child.started_at
            if ran >= STABLE_AFTER:
                pause = FIRST_PAUSE  # it had been fine for a while: restart quickly
            child.restarts += 1
            logger.error(
                "worker process %d (pid %d) exited with %s after %.1fs; restarting in "
                "%.0fs (restart %d)",
                child.index,
                child.process.pid,
                _describe(code),
                ran,
                pause,
                child.restarts,
            )
            try:
                os.unlink(child.status_file)
            except FileNotFoundError:
                pass
            await asyncio.sleep(pause)
            pause = min(MAX_PAUSE, pause * 2)  # crashing again soon waits longer
            if self._stopping:
                return 0

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        self._stopping = True
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.warning("%s received: draining %d worker processes", name, len(self._children))
            self._send(signal.SIGTERM)
        else:
            logger.warning("second %s: killing the worker processes", name)
            self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        for child in self._children:
            if child.process is not None and child.process.returncode is None:
                try:
                    child.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def health(self) -> Health:
        """Live while every child is live or restarting within budget; ready when all are."""
        loop = asyncio.get_running_loop()
        live, ready = True, True
        states = []
        for child in self._children:
            status = read_status(child.status_file)
            if status is None:  # starting, or down and restarting
                down = 0.0 if child.down_since is None else loop.time() - child.down_since
                live = live and down < RESTART_BUDGET
                ready = False
                states.append("restarting" if child.down_since is not None else "starting")
                continue
            live, ready = live and status.live, ready and status.ready
            states.append(str(status.detail.get("state", "?")))
        return Health(live=live, ready=ready, detail={"processes": states})


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor dies (Linux), so a supervisor
    killed with SIGKILL does not leave its workers running unsupervised."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def child_command(argv: Sequence[str]) -> list[str]:
    """The command line of one child: this `hare worker` invocation minus the supervisor's
    own options."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--health-port"):
            skip = True
            continue
        if arg.startswith(("--processes=", "--health-port=")):
            continue
        out.append(arg)
    return [sys.executable, "-m", "hare", *out]
