"""Run the fault suite and the cluster tier; write `docs/reliability.md` from their figures.

    .venv/bin/python scripts/reliability_report.py [--output docs/reliability.md] [-- PYTEST ARGS]

Runs `pytest tests/faults tests/cluster -m "fault or cluster"` with `HARE_FAULT_FIGURES` set
(the cluster tier runs on the 3-node RabbitMQ 4.0 cluster of `scripts/rabbitmq/cluster.sh`,
started for the run and stopped after it unless it ran already; it needs root), so that each
test appends one JSON line of figures (tasks, kills, restarts, duplicates, time to resume,
exit codes); reads pytest's JUnit XML for each test's outcome; and writes the report with the
machine it ran on. The report is written even when a test fails (the failure shows in it); the
exit code is pytest's. Needs `rabbitmqctl` for the broker, as the suite does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import reliability_cluster

ROOT = Path(__file__).resolve().parent.parent
FIGURES_ENV = "HARE_FAULT_FIGURES"
COMMAND = ".venv/bin/python scripts/reliability_report.py"

Figure = dict[str, Any]
Row = tuple[str, ...]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="hare-reliability-") as directory,
        reliability_cluster.running() as cluster,
    ):
        figures_file = Path(directory) / "figures.jsonl"
        junit = Path(directory) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/faults",
            "tests/cluster",
            "-m",
            "fault or cluster",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *args.pytest_args,
        ]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, FIGURES_ENV: str(figures_file)})
        seconds = time.monotonic() - started
        figures = _read_figures(figures_file)
        outcomes = _read_outcomes(junit)
    report = render(figures, outcomes, seconds, environment(cluster))
    args.output.write_text(report)
    print(f"wrote {args.output.relative_to(ROOT)} (pytest exit code {done.returncode})")
    return done.returncode


def _read_figures(path: Path) -> list[Figure]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _read_outcomes(path: Path) -> dict[str, str]:
    """pytest node id -> passed / failed / skipped, from the JUnit XML."""
    if not path.exists():
        return {}
    outcomes = {}
    for case in ElementTree.parse(path).iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        node = f"{module}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[node] = "failed"
        elif (skipped := case.find("skipped")) is not None:
            outcomes[node] = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            outcomes[node] = "passed"
    return outcomes


# -- the environment -----------------------------------------------------------------------


def environment(cluster: str) -> dict[str, str]:
    def run(*command: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return done.stdout.strip() or "?"

    dirty = run("git", "status", "--porcelain", "--untracked-files=no")
    commit = run("git", "rev-parse", "--short", "HEAD")
    otp = run("rabbitmqctl", "-q", "eval", "erlang:system_info(otp_release).")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "RabbitMQ": run("rabbitmqctl", "-q", "version") + " (single node, local)",
        "RabbitMQ cluster": cluster,
        "Erlang/OTP": otp.strip('"'),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "hare": f"{_version('hare-queue')} (commit {commit}"
        f"{', uncommitted changes' if dirty else ''})",
        "aiormq": _version("aiormq"),
        "OS": platform.platform(),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores",
        "memory": f"{_memory_gib():.0f} GiB",
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


# -- rendering -----------------------------------------------------------------------------


def _seconds(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{min(values):.2f}-{max(values):.2f} s"


def _rolling(f: Figure) -> list[Row]:
    return [
        (
            f"{f['tasks']:,} tasks of {f['task_ms']} ms on {f['queues']} queues, 2 workers "
            f"-c {f['concurrency']}",
            f"1 SIGTERM ({f['running_at_sigterm']} running, {f['handed_back']} handed back, "
            f"{f['requeued_after_drain_timeout']} requeued); replacement ran "
            f"{f['ran_by_replacement']:,}",
            str(f["duplicates"]),
            str(f["lost"]),
            "-",
            f"exit {f['drained_exit_code']} after {f['drain_seconds']:.2f} s "
            f"(timeout {f['drain_timeout']:.0f} s)",
        )
    ]


def _sigkill(f: Figure) -> list[Row]:
    return [
        (
            f"{f['tasks']:,} tasks of {f['task_ms']} ms, 2 workers -c {f['concurrency']}",
            f"1 SIGKILL ({f['running_at_kill']} running); replacement started",
            f"{f['duplicates']} ({f['duplicates_interrupted']} interrupted by the kill, "
            f"{f['duplicates_finished_unacked']} finished but not yet acked)",
            str(f["lost"]),
            "-",
            f"killed: exit {f['killed_exit_code']}",
        )
    ]


def _outage(f: Figure) -> list[Row]:
    rows: list[Row] = []
    restart = f["scenario"] == "broker restart"
    for s in f["streams"]:
        fault = (
            f"stop_app + start_app ({_seconds(f['fault_seconds'])})"
            if restart
            else f"{f['faults']} x close_all_connections"
        )
        resume = f"{_seconds(s['seconds_without_connection'])} without a connection"
        if restart:
            resume += f"; {_seconds(s['seconds_after_broker_back'])} after the broker was back"
        rows.append(
            (
                f"{s['published']:,} confirmed publishes ({s['publish_failures']} failed) "
                f"while consuming -c {f['concurrency']}",
                f"{fault}; worker resumed {s['resumes']}x by itself",
                f"{s['duplicates']} (redelivered or re-published after a lost connection; "
                f"{s['cut_short']} runs cut short by it)",
                str(s["lost"]),
                resume,
                f"exit {s['exit_code']}",
            )
        )
    return rows


def _cuts(f: Figure) -> list[Row]:
    return [
        (
            f"{f['published']:,} confirmed publishes at {f['rate']}/s ({f['publish_failures']} "
            f"failed), {f['workers']} worker(s) -c {f['concurrency']}",
            f"{f['cuts']} x close_all_connections; {f['copies_settled_without_running']} "
            "copies settled by their first run's outcome, not run again",
            str(f["duplicates"]),
            str(f["lost"]),
            "-",
            "exit " + ", ".join(str(code) for code in f["exit_codes"]),
        )
    ]


def _bad_input(f: Figure) -> list[Row]:
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in f["reasons"].items())
    return [
        (
            f"{f['good']:,} good + {f['bad']:,} malformed ({f['bad_kinds']} kinds), interleaved",
            f"{f['worker_restarts']} worker restarts; {f['dead_lettered']:,} dead letters: "
            f"{reasons}",
            str(f["good_duplicates"]),
            str(f["lost"]),
            "-",
            f"exit {f['exit_code']} ({f['seconds']:.0f} s for all 10,000)",
        )
    ]


def _poison(f: Figure) -> list[Row]:
    return [
        (
            f"1 message that SIGKILLs its worker + {f['good']} good, --processes "
            f"{f['processes']} -c 1",
            f"{f['crashes']} crashes, {f['process_restarts']} process restarts; dead-lettered "
            f"({f['dead_letter']}, delivery limit {f['delivery_limit']}) after "
            f"{f['seconds_to_dead_letter']:.1f} s",
            str(f["good_duplicates"]),
            str(f["lost"]),
            "-",
            f"exit {f['exit_code']}",
        )
    ]


RENDERERS: dict[str, Callable[[Figure], list[Row]]] = {
    "rolling deploy": _rolling,
    "SIGKILL": _sigkill,
    "broker restart": _outage,
    "connections closed": _outage,
    "connection cuts": _cuts,
    "bad input": _bad_input,
    "poison message": _poison,
    **reliability_cluster.RENDERERS,
}

HEADER = (
    "scenario",
    "queue",
    "tasks",
    "faults injected",
    "duplicates",
    "lost",
    "time to resume",
    "worker exit",
    "result",
)


def render(
    figures: list[Figure], outcomes: dict[str, str], seconds: float, env: dict[str, str]
) -> str:
    lines = [
        "# Reliability report",
        "",
        f"Generated by `{COMMAND}`, which runs the fault suite (`tests/faults`, marker "
        "`fault`) on a real RabbitMQ and the cluster tier (`tests/cluster`, marker `cluster`) "
        "on a 3-node RabbitMQ 4.0 cluster, and collects the figures each test records. Do not "
        "edit by hand: run the command again.",
        "",
        "Every figure is an outcome counted from the ledger the test app writes (one line per "
        "task start and end, by task id and process), from exit codes, queue depths and dead "
        "letters. *Lost* counts tasks whose publish was confirmed and that never ran to their "
        "end; it must be 0.",
        "",
        "## Environment",
        "",
        *[f"- **{key}**: {value}" for key, value in env.items()],
        f"- **suite run time**: {seconds:.0f} s (`pytest tests/faults tests/cluster -m "
        '"fault or cluster"`)',
        "",
        "## Results",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    seen = set()
    order = list(RENDERERS)
    for figure in sorted(figures, key=lambda f: order.index(f["scenario"])):
        seen.add(figure["test"])
        result = outcomes.get(figure["test"], "?")
        queue_types = (
            [s["queue_type"] for s in figure["streams"]]
            if "streams" in figure
            else [figure.get("queue_type", "-")]
        )
        for queue_type, row in zip(queue_types, RENDERERS[figure["scenario"]](figure), strict=True):
            cells = (
                figure["scenario"],
                queue_type,
                *row,
                "**FAILED**" if result == "failed" else result,
            )
            lines.append("| " + " | ".join(cells) + " |")
    missing = sorted(node for node in outcomes if node not in seen)
    for node in missing:
        lines.append(f"| `{node.split('::')[-1]}` | | | no figures | | | | | {outcomes[node]} |")
    lines += ["", *NOTES, *reliability_cluster.NOTES]
    return "\n".join(lines) + "\n"


NOTES = [
    "## What the scenarios assert",
    "",
    "- **rolling deploy**: two workers consume two queues; one gets SIGTERM while running "
    "tasks and a replacement starts. Every task ran exactly once; the drained worker finished "
    "its running tasks, handed back what had not started, and exited 0 within its drain "
    "timeout.",
    "- **SIGKILL**: `kill -9` of one of two workers mid-run, then a replacement. Every task "
    "ran at least once; a task ran twice only if the killed worker held it unsettled (its "
    "first run was in the killed process, at most its prefetch of them).",
    "- **broker restart** (`rabbitmqctl stop_app` / `start_app`, once) and **connections "
    "closed** (`rabbitmqctl close_all_connections -p <the suite's vhost>`, three times) while "
    "producers publish and workers consume, one of each per queue type: every publish that "
    "returned ran; each worker resumed by itself (same process, consuming again, tasks run "
    "after the fault); a lost connection leaves copies (deliveries held unsettled, publishes "
    "whose confirm was lost), and a worker settles a copy of what it ran by that run's "
    "outcome instead of running it again: 0 duplicates with one worker per queue.",
    "- **connection cuts**: a producer at about 400 tasks/s, workers on a quorum queue, "
    "`close_all_connections` three times. Every confirmed publish ran; with one worker, 0 "
    "duplicates; with two, a task ran twice only when its copy went to the other worker.",
    "- **bad input**: random bytes, truncated JSON, refused content types (pickle, yaml), no "
    "content type, missing `task` / `id` headers, unknown tasks, an unparsable `eta` and "
    "oversized args (10,000 extra arguments) interleaved with good tasks: every good task ran "
    "once, every bad message is in `<queue>.dead` with its reason, and the worker never "
    "restarted nor lost its connection.",
    "- **poison message**: a task that SIGKILLs its own process, under `hare worker "
    "--processes 2` (the supervisor restarts a dead process, as an orchestrator restarts a "
    "pod). Quorum queues: the broker dead-letters it after `x-delivery-limit` returns "
    "(`x-death` reason `delivery_limit`); classic queues: the worker counts redeliveries in "
    "`hare-redeliveries` and dead-letters it with reason `delivery-limit`. The good tasks "
    "behind it ran once each.",
    "",
    "*Time to resume* is read from the worker's log (millisecond timestamps): from "
    "`lost the broker connection` to `consuming again`, and, after a restart, from the broker "
    "answering again (once `start_app` returned) to `consuming again`. The worker reconnects "
    "with capped exponential backoff and jitter (0.1 s doubling to 10 s), so after an outage "
    "of a few seconds it comes back within about one backoff step of the broker.",
    "",
    "*Runs cut short* are runs that started and never ended although their worker process "
    "lives on. aiormq cancels the consumer callbacks of a lost connection; the worker shields "
    "a running task from that, so the task runs to its end, its ack fails, and the broker "
    "redelivers it. The suite asserts there are none. *Finished but not yet acked* are tasks "
    "whose function returned in the instant before a kill, before their ack left.",
    "",
    "## Copies after a lost connection",
    "",
    "A lost connection leaves copies: the broker delivers again what a worker held unsettled "
    "(often to the same worker, while the first run still goes on), and a producer publishes "
    "again what it had no confirm for. A worker keeps its runs by *run key* (task id, "
    "name, `retries`, `hare-replays`, nesting, and a digest of its place and body) while "
    "they run and for the last 10,000 after "
    "(`hare/worker/runs.py`): a copy waits for the first run and is settled by its outcome, acked "
    "once the first run's settlement had published its retry or dead letter, settled by the "
    "same decision otherwise. A retry or a replayed dead letter has a key of its own and "
    "runs. Before this (hare 0.1.0 up to commit 9380972) the same runs of *connections "
    "closed* counted 8 duplicates on a classic queue, and *connection cuts* with one worker "
    "failed on duplicates; with two workers a copy that goes to the other worker still runs "
    "there (at-least-once), which the count above shows.",
    "",
    "An exception inside hare while it handles a delivery (a bug, at any stage: decoding, "
    "before the run, recording the result, settling) no longer leaves the delivery unacked: "
    "it is requeued once, then dead-lettered with reason `internal-error` and the traceback "
    "(`tests/worker/test_internal_errors.py` injects one at each stage).",
    "",
]


if __name__ == "__main__":
    raise SystemExit(main())
