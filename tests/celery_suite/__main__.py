"""`python -m tests.celery_suite run|report`: Celery's integration suite against hare and Celery.

    run --worker hare|hare-inprocess|celery [--every N] [--files test_tasks.py ...] [-- PYTEST ARGS]
    report [--every N] [--output docs/celery-conformance.md]

`run` runs the suite once, with the session worker of the kind named, in a RabbitMQ vhost of
its own (created and deleted here; needs `rabbitmqctl`) and Redis on 127.0.0.1:6379 as the
result backend; its JUnit XML and worker log go to `.celery-suite/runs/<worker>/`. `report`
runs it three ways (hare, hare-inprocess, celery), then writes the comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from tests.celery_suite.known import IN_PROCESS
from tests.celery_suite.report import write_report
from tests.celery_suite.source import CACHE, suite_root

FILES = ("test_tasks.py", "test_inspect.py", "test_canvas.py")
#: `hare`: a `hare worker` process beside Celery's client; `hare-inprocess`: everything read
#: as hare_compat, the worker in the test process; `celery`: Celery's own embedded worker.
WORKERS = ("hare", "hare-inprocess", "celery")
#: What the in-process run covers: the tests that read the worker in the test process.
#: In the order a whole run meets them: the trace-log tests ask for no worker (an earlier test
#: started the session worker), and the inspect ones expect it to have been up a while.
IN_PROCESS_TESTS = tuple(
    sorted(
        IN_PROCESS,
        key=lambda test: ("test_trace_log" in test, test.startswith("test_inspect.py")),
    )
)
#: The most seconds one run may take before it is stopped (its JUnit XML is then missing).
RUN_WITHIN = 45 * 60.0
BROKER = "amqp://guest:guest@127.0.0.1:5672"
BACKEND = "redis://127.0.0.1:6379/0"

#: Celery's pytest settings (its pyproject.toml), for the files run from its sdist.
PYTEST_INI = """\
[pytest]
python_classes = test_*
xfail_strict = true
timeout = 45
markers =
    sleepdeprived_patched_module
    masked_modules
    patched_environ
    patched_module
    amqp
    flaky
"""


def run(
    worker: str, every: int, files: Sequence[str], extra: Sequence[str], timeout: float = 45.0
) -> int:
    """Run the suite with `worker` as the session worker; pytest's exit code."""
    root = suite_root()
    out = CACHE / "runs" / worker
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        stale.unlink()
    # (the commit of hare the run used, for the report)
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    (out / "commit").write_text(commit or "unknown")
    ini = CACHE / "pytest.ini"
    ini.write_text(PYTEST_INI)
    vhost = f"hare-celery-suite-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HARE_", "CELERY_"))}
        env |= {
            "TEST_BROKER": f"py{BROKER}/{vhost}",
            "TEST_BACKEND": BACKEND,
            "CELERY_SUITE_ROOT": str(root),
            "CELERY_SUITE_LOGS": str(out),
            "PYTHONPATH": os.pathsep.join([str(root), str(Path.cwd())]),
        }
        if worker == "hare-inprocess":
            env["CELERY_SUITE_IN_PROCESS"] = "1"
        command = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(root)]
        # Celery's fixtures (`celery_session_worker`...), then the swap; no reruns of
        # Celery's `flaky` tests, for either worker.
        fixtures = "hare_compat" if worker == "hare-inprocess" else "celery"
        command += ["-p", f"{fixtures}.contrib.pytest", "-p", "no:rerunfailures"]
        command += ["-p", "tests.celery_suite.plugin", "--suite-worker", worker]
        command += ["--suite-every", str(every), "--suite-timeout", str(timeout)]
        command += ["-p", "no:cacheprovider", "-q", "-rfE"]
        command += ["--junitxml", str(out / "junit.xml")]
        command += [str(root / "t" / "integration" / name) for name in files]
        command += list(extra)
        try:
            return subprocess.run(command, env=env, cwd=root, timeout=RUN_WITHIN).returncode
        except subprocess.TimeoutExpired:
            # A test that pytest-timeout cannot cut (inside Celery's subtests) holds the run.
            print(f"the {worker} run took over {RUN_WITHIN:.0f} s: stopped", file=sys.stderr)
            return 124
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.celery_suite")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="run the suite with one kind of worker")
    one.add_argument("--worker", choices=WORKERS, default="hare")
    one.add_argument("--every", type=int, default=1, help="every Nth test of test_canvas.py")
    one.add_argument("--files", nargs="+", default=list(FILES))
    one.add_argument("--timeout", type=float, default=45.0, help="seconds a test may take")
    one.add_argument("pytest_args", nargs="*")
    both = commands.add_parser("report", help="run with both workers, write the comparison")
    both.add_argument("--every", type=int, default=1)
    both.add_argument("--output", type=Path, default=Path("docs/celery-conformance.md"))
    both.add_argument("--timeout", type=float, default=45.0, help="seconds a test may take")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.worker, args.every, args.files, args.pytest_args, args.timeout)
    codes = {
        worker: run(worker, args.every, FILES, [], args.timeout) for worker in ("hare", "celery")
    }
    codes["hare-inprocess"] = run("hare-inprocess", 1, IN_PROCESS_TESTS, [], args.timeout)
    write_report(
        CACHE / "runs", args.output, every=args.every, exit_codes=codes, timeout=args.timeout
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
