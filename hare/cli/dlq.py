"""`hare dlq`: list, show, replay and purge dead letters from the command line.

Parsing and printing only; the operations are in `hare.dlq`. Tables and summaries go to
stdout; a progress bar goes to stderr when it is a terminal and the queue is long.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from hare import dlq
from hare.app import Hare
from hare.cli.common import (
    EXIT_BROKER,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_app_argument,
    app_path,
    load_app,
)
from hare.cli.progress import Progress
from hare.cli.queues import app_queues
from hare.core.headers import DEAD_TRACEBACK
from hare.errors import BrokerUnavailable, ConfigurationError, DeadLetterQueueNotFound, HareError

__all__ = ("add_dlq_parser", "parse_age", "run_dlq")

EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT


def add_dlq_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `hare dlq list|show|replay|purge` to the `hare` command's subparsers."""
    parser = commands.add_parser("dlq", help="inspect, replay and purge dead letters")
    actions = parser.add_subparsers(dest="dlq_command", required=True)
    queue_help = "the work queue (emails) or its dead-letter queue (emails.dead)"

    listing = actions.add_parser("list", help="counts and a table of dead letters")
    add_app_argument(listing)
    listing.add_argument(
        "queue", nargs="?", help=queue_help + " (default: the app's queues and its tasks')"
    )
    listing.add_argument(
        "--limit", type=int, default=50, help="table rows per queue (default 50; 0: all)"
    )

    show = actions.add_parser("show", help="one dead letter in full")
    add_app_argument(show)
    show.add_argument("queue", help=queue_help)
    show.add_argument("id", help="task id, correlation id, or #N (its place in `list`)")

    replay = actions.add_parser("replay", help="send dead letters back to their work queue")
    add_app_argument(replay)
    replay.add_argument("queue", help=queue_help)
    replay.add_argument(
        "--id", dest="ids", action="append", default=[], metavar="ID", help="(repeatable)"
    )
    replay.add_argument("--all", dest="every", action="store_true", help="every dead letter")
    replay.add_argument("--task", metavar="NAME", help="the dead letters of this task")
    replay.add_argument(
        "--countdown",
        type=float,
        metavar="S",
        help="run them this many seconds from now (delay ladder)",
    )

    purge = actions.add_parser("purge", help="drop dead letters for good")
    add_app_argument(purge)
    purge.add_argument("queue", help=queue_help)
    purge.add_argument(
        "--older-than", metavar="AGE", help="only those dead longer than this: 90s, 30m, 12h, 7d"
    )
    purge.add_argument("--yes", action="store_true", help="confirm: the purge cannot be undone")


def run_dlq(args: argparse.Namespace) -> int:
    """Run a parsed `hare dlq` command; return the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A lost connection is reported once, as the command's error; not with aiormq's traces.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    command = args.dlq_command
    try:
        job = _JOBS[command](args)
        app = load_app(app_path(args, spill="queue" if command == "list" else None))
    except (UsageError, ConfigurationError) as exc:
        _err(f"hare dlq {command}: {exc}")
        return EXIT_USAGE
    try:
        return asyncio.run(job(app))
    except (ConfigurationError, DeadLetterQueueNotFound) as exc:
        _err(f"hare dlq {command}: {exc}")
        return EXIT_USAGE
    except BrokerUnavailable as exc:
        _err(f"hare dlq {command}: {exc}")
        return EXIT_BROKER
    except HareError as exc:
        _err(f"hare dlq {command}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err(f"hare dlq {command}: interrupted; what was not done stays in the queue")
        return EXIT_INTERRUPTED


def parse_age(text: str) -> float:
    """Seconds in an age such as `90s`, `30m`, `12h`, `7d` or `2w`.

    >>> parse_age("7d"), parse_age("1.5h")
    (604800.0, 5400.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise UsageError(f"{text!r} is not an age such as 90s, 30m, 12h, 7d or 2w")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[match.group(2)]
    return float(match.group(1)) * unit


Job = Callable[[Hare], Coroutine[Any, Any, int]]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# -- list ----------------------------------------------------------------------------------------

_COLUMNS = (("#", 6), ("TASK", 30), ("ID", 36), ("REASON", 20), ("ATT", 3), ("DEAD AT", 20))
_HEADER = "     #  " + "  ".join(f"{name:<{width}}" for name, width in _COLUMNS[1:]) + "  DETAIL"


def _list_job(args: argparse.Namespace) -> Job:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")

    async def job(app: Hare) -> int:
        if args.queue:
            await _list_queue(app, args.queue, args.limit)
            return EXIT_OK
        for queue in app_queues(app):
            try:
                await _list_queue(app, queue, args.limit)
            except DeadLetterQueueNotFound as exc:
                _out(f"{exc.queue}: no such queue (nothing was dead-lettered there yet)")
                _out()
        return EXIT_OK

    return job


async def _list_queue(app: Hare, queue: str, limit: int) -> None:
    dead_queue = dlq.dead_queue_name(queue)
    progress = Progress(f"reading {dead_queue}")
    reasons: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    rows = 0
    async with aclosing(dlq.list_dead_letters(app, queue, progress=progress)) as found:
        async for row in found:
            rows += 1
            reasons[row.reason] += 1
            tasks[row.task or "?"] += 1
            if rows == 1:
                _out(f"{dead_queue}:")
                _out(_HEADER)
            if limit == 0 or rows <= limit:
                progress.clear()
                _out(_table_row(row))
    progress.clear()
    if limit and rows > limit:
        _out(f"... {rows - limit} more not shown (--limit 0 shows all)")
    _out(f"{rows} dead letter{_s(rows)} in {dead_queue}")
    if rows:
        _out(f"  by reason: {_counts(reasons)}")
        _out(f"  by task:   {_counts(tasks)}")
    _out()


def _table_row(row: dlq.DeadLetterRow) -> str:
    detail = row.detail.replace("\n", " ")
    if row.exception:
        detail = f"{row.exception}: {detail}" if detail else row.exception
    cells = (
        f"{row.position:>6}",
        _clip(row.task or "?", 30),
        _clip(row.id, 36),
        _clip(row.reason, 20),
        f"{'' if row.attempts is None else row.attempts:>3}",
        _iso(row.dead_at),
    )
    return "  ".join(f"{cell:<{w}}" for cell, (_, w) in zip(cells, _COLUMNS, strict=True)) + (
        "  " + _clip(detail, 60)
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _iso(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common())


# -- show ----------------------------------------------------------------------------------------


def _show_job(args: argparse.Namespace) -> Job:
    async def job(app: Hare) -> int:
        found = await dlq.find(app, args.queue, args.id)
        if found is None:
            dead_queue = dlq.dead_queue_name(args.queue)
            _err(f"hare dlq show: no dead letter {args.id!r} in {dead_queue}")
            return EXIT_FAILED
        _print_detail(found)
        return EXIT_OK

    return job


def _print_detail(found: dlq.DeadLetterDetail) -> None:
    row, properties = found.row, found.properties
    fields: Mapping[str, Any] = {
        "task": row.task or "?",
        "id": row.id,
        "queue": row.queue,
        "position": f"#{row.position}",
        "reason": row.reason,
        "detail": row.detail,
        "exception": row.exception or "-",
        "attempts": "-" if row.attempts is None else row.attempts,
        "dead at": _iso(row.dead_at),
        "replays": row.replays,
    }
    for name, value in fields.items():
        _out(f"{name + ':':<11} {value}")
    if found.decode_error is None:
        _out(f"{'args:':<11} {found.args!r}")
        _out(f"{'kwargs:':<11} {found.kwargs!r}")
    else:
        _out(f"{'body:':<11} cannot be decoded ({found.decode_error})")
        _out(f"{'':<11} {len(found.body)} bytes: {found.body[:500]!r}")
    _out("properties:")
    for name in ("content_type", "content_encoding", "correlation_id", "priority", "reply_to"):
        value = getattr(properties, name)
        if value is not None:
            _out(f"  {name}: {value}")
    _out("headers:")
    for key, value in properties.headers.items():
        if key != DEAD_TRACEBACK:
            _out(f"  {key}: {value!r}")
    traceback = properties.headers.get(DEAD_TRACEBACK)
    _out("traceback:" + ("" if traceback else " -"))
    if traceback:
        _out(str(traceback).rstrip())


# -- replay and purge ----------------------------------------------------------------------------


def _replay_job(args: argparse.Namespace) -> Job:
    ids = frozenset(name.strip() for name in args.ids if name.strip())
    chosen = sum((bool(ids), args.every, args.task is not None))
    if chosen != 1:
        raise UsageError("give exactly one of --all, --id ID (repeatable) or --task NAME")
    if args.countdown is not None and args.countdown < 0:
        raise UsageError("--countdown must not be negative")
    selector = dlq.Selector(every=args.every, ids=ids, task=args.task)

    async def job(app: Hare) -> int:
        dead_queue = dlq.dead_queue_name(args.queue)
        progress = Progress(f"replaying {dead_queue}")
        started = time.monotonic()
        try:
            done = await dlq.replay(
                app, args.queue, selector, countdown=args.countdown, progress=progress
            )
        finally:
            progress.clear()
        elapsed = time.monotonic() - started
        _out(
            f"replayed {done.replayed} dead letter{_s(done.replayed)} from "
            f"{dead_queue} ({done.examined} examined) in {elapsed:.1f}s"
        )
        if done.expired:
            _out(f"left {done.expired} past their expires in {dead_queue}")
        if done.missing:
            _out(f"not found in {dead_queue}: {', '.join(sorted(done.missing))}")
        if done.error is not None:
            _err(f"hare dlq replay: stopped: {done.error}; the rest stays in {dead_queue}")
            return EXIT_BROKER if isinstance(done.error, BrokerUnavailable) else EXIT_FAILED
        return EXIT_FAILED if done.missing else EXIT_OK

    return job


def _purge_job(args: argparse.Namespace) -> Job:
    dead_queue = dlq.dead_queue_name(args.queue)
    if not args.yes:
        raise UsageError(f"this drops dead letters from {dead_queue} for good; add --yes")
    older_than = None if args.older_than is None else parse_age(args.older_than)

    async def job(app: Hare) -> int:
        progress = Progress(f"purging {dead_queue}")
        try:
            done = await dlq.purge(app, args.queue, older_than=older_than, progress=progress)
        finally:
            progress.clear()
        age = "" if args.older_than is None else f" dead longer than {args.older_than}"
        kept = "" if older_than is None else f"; kept {done.kept}"
        _out(f"purged {done.purged} dead letter{_s(done.purged)}{age} from {dead_queue}{kept}")
        return EXIT_OK

    return job


_JOBS: Mapping[str, Callable[[argparse.Namespace], Job]] = {
    "list": _list_job,
    "show": _show_job,
    "replay": _replay_job,
    "purge": _purge_job,
}
