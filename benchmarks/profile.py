"""`python -m benchmarks profile [--n 20000]`: where hare spends its CPU enqueueing and draining.

Samples with py-spy (installed in the peers' venv; low overhead, no instrumentation):

- enqueue: a process publishing `n` no-op tasks with `adelay()`, 1000 in flight;
- drain: a `hare worker -c 256` process, attached once it is idle, while `n` no-op tasks are
  published to it (the worker drains as they arrive);
- retry: the same worker with `n` tasks that fail once and are retried at once.

Prints, per profile, the share of samples by package and the functions with the most self time
and the most inclusive time; raw stacks are kept in `benchmarks/results/profile-*/`. Import
frames are left out (the enqueue process's start-up).
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

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
            if what == "enqueue":
                profile_enqueue(py_spy, url, args.n, args.rate, stacks)
            else:
                profile_worker(py_spy, system, what, args.n, args.rate, stacks, out / "worker.log")
            print(f"\n## {what} ({args.n:,} tasks)\n")
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
) -> None:
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
        system.enqueues[0].run(n, "flaky" if task == "retry" else "noop")
        expect = 1 + (n + 1) * (2 if task == "retry" else 1)
        measure.wait_count(running.record_file, expect, timeout=300)
        sampler.send_signal(signal.SIGINT)
        sampler.wait(60)
    system.purge()


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
