"""`python -m benchmarks NAME [options]`: run one benchmark."""

from __future__ import annotations

import sys

from benchmarks import core, delays, periodic

BENCHMARKS = {"core": core.main, "delays": delays.main, "periodic": periodic.main}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}} [options]")
        raise SystemExit(2)
    BENCHMARKS[sys.argv[1]](sys.argv[2:])


main()
