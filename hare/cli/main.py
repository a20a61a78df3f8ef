"""`hare` on the command line: parse, load the app, delegate, map the outcome to an exit code.

Exit codes: 0 clean stop; 1 the worker failed (e.g. lost its broker for good); 2 bad usage or
an app that cannot be loaded; 3 the broker could not be reached at start.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hare.cli.dlq import add_dlq_parser, run_dlq
from hare.cli.schedules import add_schedules_parser, run_schedules
from hare.cli.worker import add_worker_parser, run_worker

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hare", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_worker_parser(commands)
    add_dlq_parser(commands)
    add_schedules_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hare` command."""
    args = _parser().parse_args(argv)
    if args.command == "dlq":
        return run_dlq(args)
    if args.command == "schedules":
        return run_schedules(args)
    return run_worker(args, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
