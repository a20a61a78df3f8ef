"""pytest plugin: Celery's session worker becomes a `hare worker` process (or, with
`--suite-worker hare-inprocess`, hare_compat.contrib.pytest's worker in the test process).

`celery.contrib.pytest`'s `celery_session_worker` fixture starts an embedded Celery worker with
`celery.contrib.testing.worker.start_worker`. Loaded with `-p tests.celery_suite.plugin`, this
plugin replaces that function (nothing in Celery's tests is edited): it starts
`hare worker tests.celery_suite.worker_app:app` on the `celery` queue, waits until it answers
`celery.ping` through the real client, yields, and stops it with SIGTERM. The worker's log is
`$CELERY_SUITE_LOGS/hare-worker.log`; its tail is printed when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing import worker as testing_worker

from tests.celery_suite import hook

ROOT = Path(__file__).resolve().parents[2]
#: In-process mode: Celery's tests, conftest and tasks as a migrated project has them, every
#: `celery` import read as `hare_compat`, so the session worker is hare_compat.contrib.pytest's.
#: The hook goes in as this plugin is imported (`-p`), before pytest loads the suite's conftest.
_IN_PROCESS = os.environ.get("CELERY_SUITE_IN_PROCESS") == "1"
if _IN_PROCESS:
    hook.install(Path(os.environ["CELERY_SUITE_ROOT"]))
APP = "tests.celery_suite.worker_app:app"
#: Seconds to wait for the hare worker to answer its first ping.
START_WITHIN = 60.0


@contextlib.contextmanager
def start_hare_worker(
    app: Any,
    concurrency: int = 1,
    pool: str = "solo",
    loglevel: Any = "info",
    logfile: str | None = None,
    perform_ping_check: bool = True,
    ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **kwargs: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """`celery.contrib.testing.worker.start_worker`'s signature, a `hare worker` behind it."""
    del pool, loglevel, logfile  # Celery's embedded worker's; hare's are below
    concurrency = int(os.environ.get("CELERY_SUITE_CONCURRENCY", concurrency))
    logs = Path(os.environ.get("CELERY_SUITE_LOGS", "."))
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "hare-worker.log"
    from celery.utils.nodenames import anon_nodename

    # Celery's embedded worker is named after the test process (`gen<pid>@<host>`), and the
    # suite's inspect tests look for that name.
    command = [sys.executable, "-m", "hare", "worker", APP, "-Q", "celery"]
    command += ["-n", kwargs.get("hostname") or anon_nodename()]
    command += ["-c", str(concurrency), "--drain-timeout", str(shutdown_timeout)]
    command += ["--loglevel", "info"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(":")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        if perform_ping_check:
            _wait_for_ping(app, process, log_path, ping_task_timeout)
        yield process
    finally:
        _stop(process, shutdown_timeout)


def _wait_for_ping(app: Any, process: subprocess.Popen[bytes], log: Path, each: float) -> None:
    from celery.contrib.testing.tasks import ping
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import allow_join_result

    deadline = time.monotonic() + START_WITHIN
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"hare worker exited with {process.returncode}:\n{_tail(log)}")
        try:
            with allow_join_result():
                if ping.delay().get(timeout=min(each, 5.0)) == "pong":
                    return
        except CeleryTimeout:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"hare worker did not answer ping:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes], within: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(within + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("celery-suite")
    group.addoption(
        "--suite-worker",
        choices=("hare", "hare-inprocess", "celery"),
        default="hare",
        help="the session worker: a hare worker process; a hare worker in the test process "
        "(hare_compat.contrib.pytest, with the suite's celery imports read as hare_compat); or "
        "Celery's own embedded worker",
    )
    group.addoption(
        "--suite-timeout",
        type=float,
        default=45.0,
        help="the most seconds one test may take (caps the suite's own timeout marks), so "
        "that a test that hangs costs 45 s, not five minutes",
    )
    group.addoption(
        "--suite-every",
        type=int,
        default=1,
        help="run every Nth collected test of test_canvas.py (1: all)",
    )


def pytest_configure(config: pytest.Config) -> None:
    worker = config.getoption("--suite-worker")
    if worker == "hare":
        testing_worker.start_worker = start_hare_worker
    elif worker == "hare-inprocess" and not _IN_PROCESS:
        raise pytest.UsageError("--suite-worker hare-inprocess needs CELERY_SUITE_IN_PROCESS=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cap = config.getoption("--suite-timeout")
    for item in items:
        mark = item.get_closest_marker("timeout")
        given = None if mark is None else mark.kwargs.get("timeout", (*mark.args, None)[0])
        if given is not None and given > cap:
            item.add_marker(pytest.mark.timeout(cap), append=False)  # the closest one wins
    every = config.getoption("--suite-every")
    if every <= 1:
        return
    canvas = [item for item in items if item.nodeid.split("::")[0].endswith("test_canvas.py")]
    dropped = {id(item) for n, item in enumerate(canvas) if n % every}
    config.hook.pytest_deselected(items=[item for item in items if id(item) in dropped])
    items[:] = [item for item in items if id(item) not in dropped]


def pytest_unconfigure(config: pytest.Config) -> None:
    log = Path(os.environ.get("CELERY_SUITE_LOGS", ".")) / "hare-worker.log"
    if log.exists():
        sys.stderr.write(f"\n== tail of {log}\n{_tail(log, 30)}\n")
