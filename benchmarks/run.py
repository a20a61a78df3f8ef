"""`python -m benchmarks run [--quick]`: hare next to Celery, Dramatiq, Taskiq and a raw aiormq
loop, on the same broker, in one command; writes docs/benchmarks.md's generated section and
docs/img/benchmarks.png.

Each repetition runs every system in turn (raw, hare, celery, dramatiq, taskiq: enqueue, drain,
retry, latency), so ratios are taken pair by pair within a repetition; then the delay-lateness
runs and the hold runs. Every system's driver is a subprocess (`python -m benchmarks.systems`),
hare's and the raw loop's in this environment, the peers' in `benchmarks/.peers-venv`
(created on first use). Everything happens in the private vhost `hare-bench`, created for the
run and deleted after it. Raw rows go to `benchmarks/results/run-*.json`;
`--report FILE` rebuilds the page from such a file without measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import broker, environment, peers_env, report
from benchmarks.measure import ROOT, ROW_PREFIX

RESULTS = ROOT / "benchmarks" / "results"
THROUGHPUT = ["raw", "hare", "celery", "dramatiq", "taskiq"]
DELAYS = ["hare", "hare-classic", "celery", "celery-native", "dramatiq", "taskiq"]
HOLD = [s for s in DELAYS if s != "hare-classic"]
PEERS = {"celery", "celery-native", "dramatiq", "taskiq"}
#: Variants on a classic queue, measured after their system: hare's for throughput too (the
#: peers declare classic queues: they are compared on the same queue type) and for delays (a
#: quorum queue stalls while the broker rolls its log over; see docs/benchmarks.md), the raw
#: loop's for latency.
CLASSIC = {"raw": ("raw-classic", "latency"), "hare": ("hare-classic", "throughput,latency")}


@dataclass
class Mode:
    name: str
    reps: int
    n: int
    n_seq: int
    n_retry: int
    rate: float
    seconds: float
    delay_n: int
    hold_n: int
    hold_wait: float
    hold_reps: int
    #: Tasks through one hare worker between its idle RSS and the RSS it is read again at.
    soak_n: int
    #: Run the systems' hold measurements, and the peers' delay measurements, at the same
    #: time (each has its own queues and worker; hare's delays still run alone): quicker,
    #: and the load of one shows in the others' figures.
    parallel: bool


QUICK = Mode("quick", 3, 2000, 300, 500, 500.0, 2.0, 300, 10_000, 5.0, 1, 5_000, True)
FULL = Mode("full", 3, 20_000, 3000, 5000, 500.0, 10.0, 1000, 10_000, 20.0, 1, 100_000, False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (< 5 min)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(THROUGHPUT)}")
    parser.add_argument("--skip", default="", help="comma-separated: throughput,delays,hold,soak")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/")
    parser.add_argument("--report", type=Path, help="rebuild docs from a saved results file")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        write_docs(saved)
        return
    mode = QUICK if args.quick else FULL
    if args.reps:
        mode.reps = args.reps
    only = set(args.only.split(",")) if args.only else set(THROUGHPUT) | {"celery-native"}
    if "celery" in only:
        only.add("celery-native")
    if "hare" in only:
        only.add("hare-classic")
    saved = measure_all(mode, only, set(filter(None, args.skip.split(","))))
    if not args.no_docs:
        write_docs(saved)


def measure_all(mode: Mode, only: set[str], skip: set[str]) -> dict[str, Any]:
    """Run the phases; save and return the rows with the run's description."""
    started = time.time()
    peers_python = peers_env.ensure() if only & PEERS else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-{stamp}"
    logs.mkdir()
    runner = Runner(mode, peers_python, logs)
    env_before = environment.snapshot(peers_python)
    with broker.private_vhost() as url:
        runner.url = url
        if "throughput" not in skip:
            for rep in range(mode.reps):
                for system in [s for s in THROUGHPUT if s in only]:
                    runner.call(system, "throughput,latency", rep)
                    if system in CLASSIC:
                        runner.call(*CLASSIC[system], rep)
        if "delays" not in skip:
            for rep in range(mode.reps):
                runner.phase(
                    [s for s in DELAYS if s in only],
                    "delays",
                    rep,
                    alone=frozenset({"hare", "hare-classic"}),
                )
        if "hold" not in skip:
            for rep in range(mode.hold_reps):
                runner.phase([s for s in HOLD if s in only], "hold", rep)
        if "soak" not in skip and "hare" in only:
            runner.call("hare", "soak", 0)
    saved = {
        "mode": asdict(mode),
        "started": started,
        "seconds": time.time() - started,
        "environment": env_before,
        "loadavg_end": os.getloadavg()[0],
        "failures": runner.failures,
        "rows": runner.rows,
    }
    path = RESULTS / f"run-{stamp}.json"
    path.write_text(json.dumps(saved, indent=1))
    print(f"\n{len(runner.rows)} rows in {saved['seconds']:.0f} s -> {path.relative_to(ROOT)}")
    if runner.failures:
        print(f"{len(runner.failures)} driver(s) failed; see {logs.relative_to(ROOT)}")
    return saved


def write_docs(saved: dict[str, Any]) -> None:
    page = ROOT / "docs" / "benchmarks.md"
    chart = ROOT / "docs" / "img" / "benchmarks.png"
    section = report.render(saved, chart_path="img/benchmarks.png")
    print(section)
    page.write_text(report.splice(page.read_text(), section))
    print(f"wrote {page.relative_to(ROOT)}")
    python = peers_env.PYTHON if peers_env.PYTHON.exists() else Path(sys.executable)
    chart.parent.mkdir(parents=True, exist_ok=True)
    data = RESULTS / "chart-input.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps(saved))
    result = subprocess.run(
        [str(python), "-m", "benchmarks.chart", str(data), str(chart)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        print(f"chart failed (matplotlib lives in the peers' venv):\n{result.stderr}")
    else:
        print(f"wrote {chart.relative_to(ROOT)}")


class Runner:
    """Starts the systems' drivers and collects their rows."""

    def __init__(self, mode: Mode, peers_python: Path | None, logs: Path) -> None:
        self.mode = mode
        self.peers_python = peers_python
        self.logs = logs
        self.url = ""
        self.rows: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def phase(
        self, systems: list[str], step: str, rep: int, alone: frozenset[str] = frozenset()
    ) -> None:
        """`step` of each system: one after the other, or (`parallel`) those in `alone` one
        by one and then the others at once. (hare's delays travel through the broker, so they
        would show the load of the peers' runs more than the peers' in-worker timers would
        show hare's.)"""
        together = [s for s in systems if s not in alone] if self.mode.parallel else []
        for system in systems:
            if system not in together:
                self.call(system, step, rep)
        if together:
            with ThreadPoolExecutor(len(together)) as pool:
                list(pool.map(lambda s: self.call(s, step, rep), together))

    def call(self, system: str, steps: str, rep: int) -> None:
        mode = self.mode
        python = self.peers_python if system in PEERS else Path(sys.executable)
        log = self.logs / f"{system}.log"
        command = [
            str(python),
            "-m",
            "benchmarks.systems",
            system,
            f"--what={steps}",
            f"--url={self.url}",
            f"--vhost={broker.VHOST}",
            f"--n={mode.n}",
            f"--n-seq={mode.n_seq}",
            f"--n-retry={mode.n_retry}",
            f"--rate={mode.rate}",
            f"--seconds={mode.seconds}",
            f"--delay-n={mode.delay_n}",
            f"--hold-n={mode.hold_n}",
            f"--hold-wait={mode.hold_wait}",
            f"--soak-n={mode.soak_n}",
            f"--seed={rep}",
            f"--log={log}",
        ]
        if mode.name == "quick":
            command.append("--quick")
        begun = time.monotonic()
        with open(log, "ab") as err:
            result = subprocess.run(
                command,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.PIPE,
                stderr=err,
                timeout=1800,
            )
        got = [
            {**json.loads(line[len(ROW_PREFIX) :]), "rep": rep}
            for line in result.stdout.decode().splitlines()
            if line.startswith(ROW_PREFIX)
        ]
        self.rows.extend(got)
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(
            f"rep {rep} {system:13} {steps:19} {time.monotonic() - begun:5.0f} s  "
            f"{len(got)} rows  {status}  {_brief(got)}",
            flush=True,
        )
        if result.returncode:
            self.failures.append(f"{system} {steps} rep {rep}")


def _brief(rows: list[dict[str, Any]]) -> str:
    parts = []
    for row in rows:
        value = row.get("value")
        if isinstance(value, int | float):
            parts.append(f"{row['measure']}:{row.get('key') or ''}={value:.4g}")
    return " ".join(parts)
