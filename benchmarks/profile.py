"""`python -m benchmarks profile [--n 20000]`: where hare spends its CPU enqueueing and draining.

Samples with py-spy (installed in the peers' venv; low overhead, no instrumentation):

- enqueue: a process publishing `n` no-op tasks with `adelay()`, 1000 in flight;
- drain: a `hare worker -c 256` process, attached once it is idle, while `n` no-op tasks are
  published to it (the worker drains as they arrive);
- retry: the same worker with `n` tasks that fail once and are retried at once.

Prints, per profile, where the time goes by stage of a task's path (`STAGES`: each sample is
counted for the innermost frame that is not the standard library's, so `asyncio.create_task`
called by hare counts for hare's stage that called it), with the worker's CPU time per task
(user + system, read from /proc around the drain) split by those shares; then the share by
package and the functions with the most self time and the most inclusive time. Raw stacks are
kept in `benchmarks/results/profile-*/`. Import frames are left out (the enqueue process's
start-up).
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks import broker, measure, peers_env
from benchmarks.measure import ROOT

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks profile")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--what", default="enqueue,drain,retry")
    args = parser.parse_args(argv)
    py_spy = str(peers_env.ensure().parent / "py-spy")
    out = ROOT / "benchmarks" / "results" / time.strftime("profile-%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    with broker.private_vhost() as url:
        from benchmarks.systems.hare_bench import HareSystem

        system = HareSystem(url, quick=False)
        for what in args.what.split(","):
            stacks = out / f"{what}.txt"
            cpu: float | None = None
            if what == "enqueue":
                profile_enqueue(py_spy, url, args.n, args.rate, stacks)
            else:
                cpu = profile_worker(
                    py_spy, system, what, args.n, args.rate, stacks, out / "worker.log"
                )
            print(f"\n## {what} ({args.n:,} tasks)\n")
            if cpu is not None:
                print(f"worker CPU: {cpu * 1e6 / args.n:.0f} µs per task (user + system)\n")
            print(stage_table(stacks, None if cpu is None else cpu / args.n))
            print()
            print(render(stacks, args.top))
    print(f"\nraw stacks in {out.relative_to(ROOT)}")


def profile_enqueue(py_spy: str, url: str, n: int, rate: int, stacks: Path) -> None:
    code = f"from benchmarks.profile import publish; publish({url!r}, {n})"
    result = subprocess.run(
        [py_spy, "record", "--format", "raw", "--rate", str(rate), "-o", str(stacks)]
        + ["--", sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # py-spy 0.4 exits 1 with "No child process" after a clean run: judge by the output.
    if not stacks.exists():
        raise RuntimeError(f"py-spy failed:\n{result.stdout}{result.stderr}")


def publish(url: str, n: int) -> None:
    """The enqueue target: `n` `adelay()` calls, 1000 in flight."""
    from benchmarks.systems.hare_bench import HareSystem

    HareSystem(url, quick=False).enqueues[0].run(n, "noop")


def profile_worker(
    py_spy: str, system: object, task: str, n: int, rate: int, stacks: Path, log: Path
) -> float:
    """Sample a worker draining `n` tasks into `stacks`; its CPU seconds for the drain."""
    from benchmarks.systems.hare_bench import HareSystem

    assert isinstance(system, HareSystem)
    system.purge()
    with measure.worker(system.drains[0], str(log)) as running:
        system.send_now(0.0)
        if not measure.wait_count(running.record_file, 1, timeout=60):
            raise RuntimeError("the worker did not start")
        sampler = subprocess.Popen(
            [py_spy, "record", "--format", "raw", "--rate", str(rate), "-o", str(stacks)]
            + ["--pid", str(running.process.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        process = psutil.Process(running.process.pid)
        before = process.cpu_times()
        system.enqueues[0].run(n, "flaky" if task == "retry" else "noop")
        expect = 1 + (n + 1) * (2 if task == "retry" else 1)
        measure.wait_count(running.record_file, expect, timeout=300)
        after = process.cpu_times()
        sampler.send_signal(signal.SIGINT)
        sampler.wait(60)
    system.purge()
    return float((after.user - before.user) + (after.system - before.system))


#: The stages of a task's path through a worker, by the file (and function) of the innermost
#: frame that is not the standard library's: first match wins.
STAGES: list[tuple[str, str, str]] = [
    ("socket writes (acks)", "asyncio/streams.py", "write"),
    ("AMQP header table decode (pamqp)", "pamqp/decode.py", "*"),
    ("AMQP frames (pamqp)", "pamqp/*", "*"),
    ("aiormq: reader, channel, consumer task", "aiormq/*", "*"),
    ("the task function (writes a 16-byte record)", "benchmarks/*", "*"),
    ("transport adapter: Delivery, consumer callback", "hare/transport/amqp/transport.py", "*"),
    ("acks: coalescing, settlement", "hare/transport/amqp/acks.py", "*"),
    ("acks: coalescing, settlement", "hare/worker/settlement.py", "*"),
    ("message decode: JSON body, headers (hare)", "hare/core/*", "*"),
    ("request and context objects", "hare/worker/request.py", "*"),
    ("request and context objects", "hare/context.py", "*"),
    ("signals and middleware", "hare/signals.py", "*"),
    ("signals and middleware", "hare/middleware.py", "*"),
    ("duplicate check: run keys", "hare/worker/runs.py", "*"),
    ("result and follow-ups", "hare/worker/recording.py", "*"),
    ("result and follow-ups", "hare/worker/followups.py", "*"),
    ("result and follow-ups", "hare/results/*", "*"),
    ("revocation check", "hare/control/*", "*"),
    ("observers: metrics, Celery events", "hare/worker/observing.py", "*"),
    ("observers: metrics, Celery events", "hare/worker/monitoring.py", "*"),
    ("observers: metrics, Celery events", "hare/metrics/*", "*"),
    ("logging", "hare/worker/tracelog.py", "*"),
    ("logging", "logging/*", "*"),
    ("worker pipeline: task per delivery, admit, run, call", "hare/worker/*", "*"),
    ("hare, other", "hare/*", "*"),
]

#: Standard-library packages whose frames count for the caller's stage.
_STDLIB = ("asyncio/", "json/", "contextlib", "_weakrefset", "weakref", "inspect", "typing")


_LOOP_FRAMES = {("_run", "asyncio/events.py"), ("run", "asyncio/runners.py")}


def stage_of(frames: list[tuple[str, str]]) -> str:
    """The stage of one sample (`frames` outermost first)."""
    leaf_function, leaf_file = frames[-1]
    if fnmatch.fnmatch(leaf_file, "asyncio/streams.py") and leaf_function == "write":
        return STAGES[0][0]
    # Only the callback the loop runs now counts: the frames below it (`Handle._run`, or
    # `Runner.run` under uvloop, whose loop is C) are the loop's and the entry point's.
    for index in range(len(frames) - 1, -1, -1):
        if frames[index] in _LOOP_FRAMES:
            frames = frames[index + 1 :]
            break
    for function, file in reversed(frames):
        if file.startswith(_STDLIB) or file.startswith("<"):
            continue
        for stage, pattern, wanted in STAGES:
            if fnmatch.fnmatch(file, pattern) and fnmatch.fnmatch(function, wanted):
                return stage
        return "other"
    return "event loop (asyncio): select, callbacks, task steps"


def stage_table(stacks: Path, cpu_per_task: float | None) -> str:
    """Markdown table of the stages' shares (and µs per task, given the CPU per task)."""
    stages: collections.Counter[str] = collections.Counter()
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")]
        if any(function == "_find_and_load" for function, _ in frames):
            continue
        stages[stage_of(frames)] += int(count_text)
    total = sum(stages.values())
    if not total:
        return "no samples"
    head = "| stage | share |" + (" µs per task |" if cpu_per_task is not None else "")
    lines = [head, "|---|---|" + ("---|" if cpu_per_task is not None else "")]
    for stage, count in stages.most_common():
        row = f"| {stage} | {100 * count / total:.1f} % |"
        if cpu_per_task is not None:
            row += f" {cpu_per_task * 1e6 * count / total:.1f} |"
        lines.append(row)
    return "\n".join(lines)


def _frame(text: str) -> tuple[str, str]:
    match = FRAME.match(text)
    if not match:
        return text, "?"
    return match["function"], match["file"]


def _package(file: str) -> str:
    if file.startswith("<"):
        return "other"
    parts = Path(file).parts
    return parts[0].removesuffix(".py") if parts else "other"


def render(stacks: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")]
        if any(function == "_find_and_load" for function, _ in frames):
            continue
        count = int(count_text)
        total += count
        function, file = frames[-1]
        own[f"{function} ({file})"] += count
        packages[_package(file)] += count
        for name in {f"{f} ({p})" for f, p in frames}:
            inclusive[name] += count
    if not total:
        return "no samples"

    def share(value: int) -> str:
        return f"{100 * value / total:5.1f} %"

    lines = [f"{total:,} samples", "", "self time by package:"]
    lines += [f"  {share(c)}  {name}" for name, c in packages.most_common(12)]
    lines += ["", "self time by function:"]
    lines += [f"  {share(c)}  {name}" for name, c in own.most_common(top)]
    lines += ["", "inclusive time, hare / aiormq / pamqp functions (below 99 %):"]
    ours = [
        (name, c)
        for name, c in inclusive.most_common()
        if name.split("(")[-1].startswith(("hare/", "aiormq/", "pamqp/")) and c < 0.99 * total
    ]
    lines += [f"  {share(c)}  {name}" for name, c in ours[:top]]
    return "\n".join(lines)
