"""Celery's `celery worker` flags on `hare worker`: accepted, answered with a note, or refused.

A Celery command line should not end in `unrecognized arguments`. Each flag is decided once:

* **accepted** when hare does what it asks (`-A`, `-l INFO`, `-O fair`, `-E/--task-events`
  (Celery's monitoring events, for Flower: `hare.worker.monitoring`), the `--without-*`
  switches for chatter hare workers never have, `--pidfile`, `-f/--logfile`,
  `-I/--include`, `-X/--exclude-queues`);
* **a note, then carry on** when ignoring it changes nothing the user relies on (`-B`, `-s`,
  `-S`, `--prefetch-multiplier N`, `--autoscale MAX,MIN` which becomes `-c MAX`);
* **refused**, exit 2 with the reason, when the worker would otherwise do something other
  than what was asked (`-D`, `--time-limit`, `--soft-time-limit`, `--purge`).

`-P/--pool` and the prefork options (`--max-tasks-per-child`, `--max-memory-per-child`,
`--pool-start-method`) are hare worker's own options (`hare.cli.pool_options`), under
Celery's names. docs/migrating-from-celery.md has the same table for users.
"""

from __future__ import annotations

import argparse

from hare.cli.common import UsageError, whole_number

__all__ = ("add_celery_flags", "apply_celery_flags")

_REFUSED = {
    "detach": "-D/--detach: hare worker does not daemonize; run it in the foreground under "
    "systemd, supervisord, docker or Kubernetes (--pidfile and --logfile work)",
    "time_limit": "--time-limit: hare has no worker-wide time limit; give tasks time_limit= "
    "(or task_time_limit in a Celery app's configuration)",
    "soft_time_limit": "--soft-time-limit: hare has no worker-wide soft time limit; give "
    "tasks soft_time_limit= (or task_soft_time_limit in a Celery app's configuration)",
    "purge": "--purge/--discard: hare worker does not purge at start; run "
    "`hare purge APP QUEUE` first if that is what you want",
}


def add_celery_flags(parser: argparse.ArgumentParser) -> None:
    """Celery's worker flags, in a group of their own in `hare worker --help`."""
    group = parser.add_argument_group(
        "Celery's worker flags",
        "Accepted so that a `celery worker` command line works: each does what it does in\n"
        "Celery, or prints a one-line note and carries on, or stops with the reason\n"
        "(the table is in docs/migrating-from-celery.md).",
    )
    add = group.add_argument
    add("--autoscale", metavar="MAX[,MIN]", help="becomes -c MAX: idle slots cost nothing")
    add("-O", dest="optimization", choices=["fair", "default"], help="accepted: hare is fair")
    add(
        "--prefetch-multiplier", type=whole_number(0), metavar="N", help="hare's is always 1 (note)"
    )
    add(
        "-E",
        "--task-events",
        dest="task_events",
        action="store_true",
        help="send Celery's events (worker heartbeats, task events) for Flower and `celery "
        "events`, as the app's worker_send_task_events does",
    )
    add("--pidfile", metavar="FILE", help="write the pid here; refuse to start if it runs")
    add("-f", "--logfile", metavar="FILE", help="log to this file instead of stderr")
    add("-I", "--include", metavar="MODULES", help="comma-separated modules to import first")
    add("-X", "--exclude-queues", metavar="QUEUES", help="comma-separated queues not to consume")
    add("-B", "--beat", action="store_true", help="not needed: every worker runs the schedules")
    add("-s", "--schedule-filename", metavar="FILE", help="beat's file: not needed (note)")
    add("-S", "--statedb", metavar="FILE", help="not needed: revocations live in the broker")
    for flag in ("--without-heartbeat", "--without-gossip", "--without-mingle"):
        add(flag, action="store_true", help="accepted: hare workers do not do this")
    refused = [
        (("-D", "--detach"), "detach"),
        (("--purge", "--discard"), "purge"),
    ]
    for flags, dest in refused:
        add(*flags, dest=dest, action="store_true", help="refused, with the reason")
    for flag in ("--time-limit", "--soft-time-limit"):
        add(flag, type=float, metavar="S", help="refused, with the reason")


def apply_celery_flags(args: argparse.Namespace) -> list[str]:
    """Check Celery's flags in `args` and fold those that map onto hare's options into them
    (`--autoscale` sets the concurrency). The notes to print; `UsageError` for a flag hare
    refuses."""
    for dest, reason in _REFUSED.items():
        if getattr(args, dest) not in (None, False):
            raise UsageError(reason)
    notes = _autoscale(args)
    if args.beat:
        notes.append("-B: not needed, schedules run in every hare worker; carrying on")
    if args.schedule_filename:
        notes.append("-s: not needed, hare keeps no beat schedule file; carrying on")
    if args.statedb:
        notes.append(
            "-S: not needed, revocations persist in the broker's revocation stream; carrying on"
        )
    if args.prefetch_multiplier not in (None, 1):
        notes.append(
            f"--prefetch-multiplier {args.prefetch_multiplier}: hare prefetches exactly -c "
            "messages per queue (a multiplier of 1), so no task waits behind a busy one; "
            "carrying on"
        )
    return notes


def _autoscale(args: argparse.Namespace) -> list[str]:
    if args.autoscale is None:
        return []
    high, _, low = args.autoscale.partition(",")
    try:
        most, least = int(high), int(low or 0)
    except ValueError:
        raise UsageError(f"--autoscale {args.autoscale}: give MAX,MIN, e.g. 10,3") from None
    if most < 1 or not 0 <= least <= most:
        raise UsageError(f"--autoscale {args.autoscale}: give MAX,MIN with 0 <= MIN <= MAX")
    if args.concurrency not in (None, most):
        raise UsageError(f"give one of -c {args.concurrency} and --autoscale {args.autoscale}")
    args.concurrency = most
    return [
        f"--autoscale {args.autoscale}: running up to {most} tasks at once (-c {most}); an "
        "idle slot costs hare nothing, so there is nothing to scale"
    ]
