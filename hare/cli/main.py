"""`hare` on the command line: parse, delegate to a subcommand, return its exit code.

Each subcommand lives in a module of its own with `add_<name>_parser(commands)` and
`run_<name>(args) -> int`; `main` only dispatches. Exit codes are in `hare.cli.common`.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable, Sequence

from hare._version import __version__
from hare.cli.dashboard import add_dashboard_parser, run_dashboard
from hare.cli.delayed import add_delayed_parser, run_delayed
from hare.cli.dlq import add_dlq_parser, run_dlq
from hare.cli.events import add_events_parser, run_events
from hare.cli.inspect import add_inspect_parser, run_inspect
from hare.cli.migrate import add_migrate_parser, run_migrate
from hare.cli.purge import add_purge_parser, run_purge
from hare.cli.schedules import add_schedules_parser, run_schedules
from hare.cli.status import add_status_parser, run_status
from hare.cli.worker import add_worker_parser, run_worker

__all__ = ("main",)

_DESCRIPTION = """\
hare runs Python tasks from RabbitMQ queues, speaking Celery's protocol: a Celery
client can feed hare workers and the other way round.

APP names your app: MODULE:ATTR (shop.tasks:app), or a module or package as Celery's
-A takes it (proj). It can also be given as -A APP, before or after the command."""

_EPILOG = """\
getting started:
  hare worker shop.tasks:app              run the tasks (Ctrl-C drains and stops)
  hare status shop.tasks:app              what waits where, who consumes it
  hare inspect shop.tasks:app ping        which workers answer
  hare COMMAND --help                     the options of one command

exit codes: 0 done; 1 the command failed; 2 bad usage or an app that cannot be loaded;
3 the broker could not be reached.

docs: docs/guide.md; a Celery project: docs/migrating-from-celery.md"""

Runner = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hare",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"hare {__version__} (Python {platform.python_version()})",
    )
    parser.add_argument(
        "-A", "--app", dest="app_global", metavar="APP", help="the app, as `celery -A APP`"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_worker_parser(commands)
    add_status_parser(commands)
    add_inspect_parser(commands)
    add_purge_parser(commands)
    add_delayed_parser(commands)
    add_dlq_parser(commands)
    add_schedules_parser(commands)
    add_events_parser(commands)
    add_dashboard_parser(commands)
    add_migrate_parser(commands)
    return parser


_RUNNERS: dict[str, Runner] = {
    "status": run_status,
    "inspect": run_inspect,
    "purge": run_purge,
    "delayed": run_delayed,
    "dlq": run_dlq,
    "schedules": run_schedules,
    "events": run_events,
    "dashboard": run_dashboard,
    "migrate": run_migrate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hare` command."""
    args = _parser().parse_args(argv)
    if args.command == "worker":
        return run_worker(args, argv)
    return _RUNNERS[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
