"""`hare worker` through the real entry point: help and version, Celery's flags, option
checks, the queues a worker consumes without -Q, its start-up line, and clear failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hare._version import __version__
from hare.cli.common import EXIT_OK, EXIT_USAGE
from hare.cli.main import main

APP = """
from hare import Hare, every

app = Hare("flagshop", broker="memory://", environ={}, default_queue="work")


@app.task(queue="web.emails")
def send(to: str) -> str:
    return to


@app.task
async def add(a: int, b: int) -> int:
    return a + b


@app.periodic(every(minutes=5), queue="reports")
def report() -> None:
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flagshop.py").write_text(textwrap.dedent(APP))
    (tmp_path / "extra.py").write_text(
        "from pathlib import Path\nPath('extra-imported').write_text('yes')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def hare(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hare", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


class Running:
    """A `hare worker` subprocess whose stderr is collected as it comes."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hare", *args],
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, *words: str, within: float = 30.0, file: Path | None = None) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            text = file.read_text() if file is not None and file.exists() else self.text
            if all(word in text for word in words):
                return text
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"never saw {words}; stderr:\n{self.text}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


# -- first contact -------------------------------------------------------------------------------


def test_version_and_a_help_written_for_users() -> None:
    version = hare("--version")
    assert version.returncode == 0
    assert version.stdout.startswith(f"hare {__version__} (Python ")
    help_ = hare("--help")
    assert help_.returncode == 0
    for command in ("worker", "status", "inspect", "purge", "delayed", "dlq", "schedules"):
        assert f"\n    {command} " in help_.stdout, command
    assert "getting started:" in help_.stdout and "exit codes:" in help_.stdout
    assert "argv in, exit code out" not in help_.stdout  # not a developer docstring


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["worker"], "Without -Q the worker consumes"),
        (["status"], "unacked"),
        (["inspect"], "ping"),
        (["purge"], "asks before"),
        (["delayed"], "revokes the task id"),
        (["delayed", "cancel"], "APP"),
        (["dlq"], "list"),
        (["schedules"], "spec the fleet runs"),
        (["migrate"], "relative imports"),
    ],
)
def test_every_command_has_a_help(
    capsys: pytest.CaptureFixture[str], command: list[str], words: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert words in " ".join(out.split()), out


# -- Celery's flags ------------------------------------------------------------------------------


def test_a_celery_command_line_runs_with_notes_for_what_hare_does_not_need(project: Path) -> None:
    log = project / "worker.log"
    worker = Running(
        [
            "worker", "-A", "flagshop", "-l", "INFO", "-P", "threads", "-O", "fair", "-E",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-B", "-s", "celerybeat-schedule", "-S", "worker.state",
            "--prefetch-multiplier", "4", "--autoscale", "8,2", "-n", "w1@%h",
            "--pidfile", "w.pid", "-f", str(log), "-I", "extra", "-X", "reports",
        ],
        project,
    )  # fmt: skip
    try:
        text = worker.wait_for("connected", "worker ready", file=log)
        assert (project / "w.pid").read_text().strip() == str(worker.process.pid)
    finally:
        code = worker.stop()
    assert code == EXIT_OK, worker.text
    host = socket.gethostname()
    assert f"w1@{host} connected to memory://; consuming work, web.emails\n" in text
    assert "concurrency 8" in text  # --autoscale 8,2
    assert "pool: threads, 8 tasks at once" in text  # -P threads, said at start
    assert (project / "extra-imported").exists()  # -I extra
    assert not (project / "w.pid").exists()  # removed at exit
    notes = [line for line in worker.lines if line.startswith("hare worker: ")]
    assert [note.split(":")[1].strip() for note in notes] == [
        "--autoscale 8,2",
        "-B",
        "-s",
        "-S",
        "--prefetch-multiplier 4",
    ], notes
    assert all("carrying on" in note or "nothing to scale" in note for note in notes)
    assert "Traceback" not in worker.text


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["-P", "gevent"], "hare does not monkey-patch"),
        (["--pool", "Eventlet"], "drop -P eventlet"),
        (["-P", "custom"], "unknown pool; hare has prefork (Celery's processes), threads and solo"),
        (["-P", "solo", "-c", "4"], "-P solo runs one task at a time"),
        (["-D"], "does not daemonize"),
        (["--time-limit", "60"], "give tasks time_limit="),
        (["--soft-time-limit", "50"], "soft_time_limit="),
        (["--purge"], "hare purge APP QUEUE"),
        (["--autoscale", "3,8"], "0 <= MIN <= MAX"),
        (["--autoscale", "many"], "give MAX,MIN"),
        (["--autoscale", "8,2", "-c", "4"], "give one of -c 4 and --autoscale 8,2"),
    ],
)
def test_celery_flags_hare_refuses_say_why_and_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], flags: list[str], words: str
) -> None:
    assert main(["worker", "flagshop", *flags]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def test_a_refused_flag_through_the_installed_command(project: Path) -> None:
    result = hare("worker", "-A", "flagshop", "-P", "gevent", cwd=project)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("hare worker: -P gevent: hare does not monkey-patch")
    assert "unrecognized arguments" not in result.stderr


# -- checking every option -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["-c", "0"], "argument -c/--concurrency: must be at least 1, not 0"),
        (["-c", "-3"], "must be at least 1"),
        (["-c", "many"], "'many' is not a whole number"),
        (["--processes", "0"], "argument --processes: must be at least 1"),
        (["--health-port", "99999"], "must be at most 65535, not 99999"),
        (["--health-port", "0"], "must be at least 1"),
        (["--drain-timeout", "-1"], "must be 0 or more seconds"),
        (["--drain-timeout", "inf"], "must be 0 or more seconds"),
        (["-l", "loud"], "invalid choice: 'loud'"),
        (["--prefetch-multiplier", "-1"], "must be at least 0, not -1"),
        (["--max-tasks-per-child", "-1"], "must be at least 0, not -1"),
        (["--max-memory-per-child", "lots"], "'lots' is not a whole number"),
        (["--pool-start-method", "vfork"], "invalid choice: 'vfork'"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], flags: list[str], words: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "flagshop", *flags])
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: hare worker") and words in err, err


def test_c_0_through_the_installed_command(project: Path) -> None:
    result = hare("worker", "flagshop", "-c", "0", cwd=project)
    assert result.returncode == EXIT_USAGE
    assert "must be at least 1, not 0" in result.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_health_port_in_use_is_one_line_and_exit_2(project: Path, processes: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = hare("worker", "flagshop", "--health-port", port, "--processes", processes)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert (
        result.stderr
        == f"hare worker: --health-port {port}: the port is in use by another process\n"
    )


def test_a_second_worker_on_the_same_pidfile_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "w.pid").write_text(f"{os.getppid()}\n")  # a process that runs
    assert main(["worker", "flagshop", "--pidfile", "w.pid"]) == EXIT_USAGE
    assert f"process {os.getppid()} is running with it" in capsys.readouterr().err


# -- apps that cannot be loaded ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def broken(:\n", "syntax error in {path}, line 1: invalid syntax"),
        ("import not_a_module_anywhere_x\n", "ModuleNotFoundError: No module named"),
        ("x = 1\nraise RuntimeError('no config')\n", "RuntimeError: no config ({path}, line 2)"),
    ],
)
def test_an_app_module_that_does_not_import_exits_2_with_its_cause(
    project: Path, capsys: pytest.CaptureFixture[str], source: str, words: str
) -> None:
    path = project / "brokenapp.py"
    path.write_text(source)
    sys.modules.pop("brokenapp", None)
    assert main(["worker", "brokenapp:app"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("hare: cannot import 'brokenapp': ") and err.count("\n") == 1, err
    assert words.format(path=path) in err


def test_a_syntax_error_through_the_installed_command(project: Path) -> None:
    (project / "typo.py").write_text("from hare import Hare\napp = Hare('t'\n")
    result = hare("worker", "typo", cwd=project)
    assert result.returncode == EXIT_USAGE
    assert "syntax error in" in result.stderr and "Traceback" not in result.stderr


# -- queues, the start-up line, --processes ------------------------------------------------------


def test_without_q_a_worker_consumes_its_tasks_queues_and_says_where_it_connected(
    project: Path,
) -> None:
    worker = Running(["worker", "flagshop:app"], project)
    try:
        worker.wait_for("connected to memory://; consuming work, reports, web.emails\n")
    finally:
        assert worker.stop() == EXIT_OK, worker.text


def test_with_processes_each_line_names_its_process(project: Path) -> None:
    worker = Running(["worker", "flagshop", "--processes", "2", "--pidfile", "w.pid"], project)
    try:
        worker.wait_for(*(f"[worker {i}] hare.cli: hare." for i in (0, 1)))
        # The supervisor holds the pid file; its children start without it.
        assert (project / "w.pid").read_text().strip() == str(worker.process.pid)
    finally:
        assert worker.stop() == EXIT_OK, worker.text
    lines = [line for line in worker.lines if line.strip()]
    assert all("[supervisor]" in line or "[worker " in line for line in lines), lines
    assert sum("connected to memory://" in line for line in lines) == 2
