"""`python -m benchmarks.systems SYSTEM --what throughput,latency,... [options]`.

Runs one system's measurements in this process (the orchestrator starts one of these per
system and repetition, in hare's environment or the peers' one) and prints result rows.
"""

from __future__ import annotations

import argparse
import importlib
import os

from benchmarks import procedures

MODULES = {
    "raw": "benchmarks.systems.raw",
    "hare": "benchmarks.systems.hare_bench",
    # Latency on a classic queue (hare's and the raw loop's default is a quorum queue).
    "raw-classic": "benchmarks.systems.raw",
    "hare-classic": "benchmarks.systems.hare_bench",
    "celery": "benchmarks.systems.celery_bench",
    "celery-native": "benchmarks.systems.celery_bench",
    "dramatiq": "benchmarks.systems.dramatiq_bench",
    "taskiq": "benchmarks.systems.taskiq_bench",
}
STEPS = ("throughput", "latency", "delays", "hold", "soak")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.systems")
    parser.add_argument("system", choices=sorted(MODULES))
    parser.add_argument("--what", default="throughput,latency")
    parser.add_argument("--url", required=True)
    parser.add_argument("--vhost", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--n-seq", type=int, default=3_000)
    parser.add_argument("--n-retry", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--delay-n", type=int, default=1000)
    parser.add_argument("--hold-n", type=int, default=10_000)
    parser.add_argument("--hold-wait", type=float, default=20.0)
    parser.add_argument("--soak-n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=os.devnull)
    args = parser.parse_args()
    steps = args.what.split(",")
    if unknown := set(steps) - set(STEPS):
        parser.error(f"unknown step(s): {', '.join(sorted(unknown))}")
    os.environ["BENCH_URL"] = args.url
    if args.system == "celery-native":
        os.environ["CELERY_QUORUM"] = "1"
    if args.system.endswith("-classic"):
        os.environ["BENCH_CLASSIC"] = "1"
    module = importlib.import_module(MODULES[args.system])
    system: procedures.System = module.make(args.url, args.quick)
    options = procedures.Options(
        n=args.n,
        n_seq=args.n_seq,
        n_retry=args.n_retry,
        rate=args.rate,
        seconds=args.seconds,
        delay_n=args.delay_n,
        hold_n=args.hold_n,
        hold_wait=args.hold_wait,
        soak_n=args.soak_n,
        seed=args.seed,
        vhost=args.vhost,
        log=args.log,
    )
    for step in steps:
        getattr(procedures, step)(system, options)


main()
