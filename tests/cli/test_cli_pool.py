"""`hare worker`'s pool: `-P` under Celery's names, `-c` as the prefork children, their limits,
what a Celery app's `worker_*` settings propose and that the command line wins over them.

Each case builds the `Worker` the command line describes (`hare.cli.worker._worker`, which
does not run it) and reads its pool, so the options are seen where they arrive.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hare.cli.celery_flags import apply_celery_flags
from hare.cli.common import EXIT_USAGE, app_path
from hare.cli.main import _parser, main
from hare.cli.pool_options import check_pool, describe_pool
from hare.cli.worker import _worker
from hare.worker.prefork.config import PoolConfig, default_concurrency
from hare.worker.worker import Worker

CPUS = default_concurrency("prefork")

MODULES = {
    "poolshop": """
        from hare import Hare

        app = Hare("poolshop", broker="memory://", environ={})

        @app.task
        def add(a: int, b: int) -> int:
            return a + b
        """,
    # A Celery app that sizes its pool itself.
    "sized": """
        from hare_compat import Celery

        celery = Celery("sized", broker="memory://", set_as_current=False)
        celery.conf.update(
            worker_pool="threads",
            worker_concurrency=5,
            worker_max_tasks_per_child=7,
            worker_max_memory_per_child=9000,
            worker_pool_start_method="forkserver",
        )
        """,
    # A Celery app with Celery's defaults: the prefork pool, a child per CPU.
    "plain": """
        from hare_compat import Celery

        app = Celery("plain", broker="memory://", set_as_current=False)
        """,
    "green": """
        from hare_compat import Celery

        app = Celery("green", broker="memory://", set_as_current=False, worker_pool="gevent")
        """,
}


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, source in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def make(*argv: str) -> Worker:
    """The worker `hare worker ARGV` would run, built the way `run_worker` builds it."""
    args = _parser().parse_args(["worker", *argv])
    path = app_path(args)
    check_pool(args)
    apply_celery_flags(args)
    return _worker(args, path)


@pytest.mark.parametrize(
    ("argv", "pool", "concurrency"),
    [
        pytest.param(
            ["poolshop"],
            PoolConfig(kind="threads", app_path="poolshop:app"),
            16,
            id="a hare app runs threads unless told; the app path is resolved",
        ),
        pytest.param(
            ["-A", "poolshop:app", "-P", "prefork", "-c", "3", "--max-tasks-per-child", "100",
             "--max-memory-per-child", "200000", "--pool-start-method", "SPAWN"],
            PoolConfig(kind="prefork", start_method="spawn", max_tasks_per_child=100,
                       max_memory_per_child=200000, app_path="poolshop:app"),
            3,
            id="prefork and its children's options",
        ),
        pytest.param(
            ["sized"],
            PoolConfig(kind="threads", start_method="forkserver", max_tasks_per_child=7,
                       max_memory_per_child=9000, app_path="sized:celery"),
            5,
            id="a Celery app proposes its pool from its settings",
        ),
        pytest.param(
            ["sized", "-P", "prefork", "-c", "2", "--max-tasks-per-child", "0",
             "--pool-start-method", "fork"],
            # 0 on the command line is Celery's "no limit", whatever the app says.
            PoolConfig(kind="prefork", max_memory_per_child=9000, app_path="sized:celery"),
            2,
            id="the command line wins over the app's proposals",
        ),
        pytest.param(
            ["plain"],
            PoolConfig(kind="prefork", app_path="plain:app"),
            CPUS,
            id="a Celery app runs prefork with a child per CPU by default, as Celery",
        ),
    ],
)  # fmt: skip
def test_the_pool_options_reach_the_worker(
    argv: list[str], pool: PoolConfig, concurrency: int
) -> None:
    worker = make(*argv)
    assert (worker.pool, worker.concurrency) == (pool, concurrency)


@pytest.mark.parametrize(
    ("argv", "kind", "concurrency"),
    [
        (["-P", "PROCESSES"], "prefork", CPUS),  # Celery's alias; without -c a child per CPU
        (["--pool", "prefork", "--autoscale", "8,2"], "prefork", 8),
        (["-P", "solo"], "solo", 1),
        (["-P", "threads", "-c", "40"], "threads", 40),
        # The app's worker_concurrency sizes its pool, not the one-at-a-time solo pool.
        (["-A", "sized", "-P", "solo"], "solo", 1),
    ],
)
def test_the_pool_and_what_c_counts_in_it(argv: list[str], kind: str, concurrency: int) -> None:
    worker = make(*argv) if "-A" in argv else make("poolshop", *argv)
    assert (worker.pool.kind, worker.concurrency) == (kind, concurrency)


def test_a_celery_app_s_pool_hare_has_not_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "green"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("hare: setting worker_pool='gevent': hare does not monkey-patch")
    assert err.count("\n") == 1, err


def test_with_processes_each_child_is_given_the_pool_options() -> None:
    from hare.cli.worker import _without_pidfile
    from hare.worker.supervisor import child_command

    argv = ["worker", "poolshop", "--processes", "2", "-P", "prefork", "-c", "2",
            "--max-tasks-per-child", "50", "--pidfile", "w.pid"]  # fmt: skip
    assert child_command(_without_pidfile(argv))[3:] == [
        "worker", "poolshop", "-P", "prefork", "-c", "2", "--max-tasks-per-child", "50",
    ]  # fmt: skip
    worker = make(*argv[1:])  # what the supervisor checks before starting them
    assert (worker.pool.kind, worker.pool.max_tasks_per_child) == ("prefork", 50)


def test_help_shows_the_pool(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "-P POOL, --pool POOL prefork (child processes, -c of them; Celery's 'processes' too)",
        "--pool-start-method {fork,spawn,forkserver}",
        "--max-tasks-per-child N replace a prefork child after it ran N tasks",
        "--max-memory-per-child KIB",
        "with -P prefork: child processes",
    ):
        assert words in text, words
    assert "refused" not in text.split("--max-tasks-per-child N", 1)[1].split("--autoscale")[0]


@pytest.mark.parametrize(
    ("config", "concurrency", "said"),
    [
        (PoolConfig(kind="threads"), 16, "threads, 16 tasks at once"),
        (PoolConfig(kind="solo"), 1, "solo, one task at a time"),
        (PoolConfig(kind="prefork"), 1, "prefork, 1 child process (fork)"),
        (
            PoolConfig(
                kind="prefork",
                start_method="spawn",
                max_tasks_per_child=100,
                max_memory_per_child=200000,
            ),
            8,
            "prefork, 8 child processes (spawn), each replaced after 100 tasks, replaced "
            "above 200000 KiB",
        ),
    ],
)
def test_the_start_up_line_says_which_pool(config: PoolConfig, concurrency: int, said: str) -> None:
    assert describe_pool(config, concurrency) == said
