"""`hare delayed APP list|show|cancel`: the tasks waiting in the delay ladder.

`list` and `show` read the ladder (`hare.cli.ladder_view`: each message held for a moment
and handed back in place). `cancel` does not take the message out: a ladder level is a
fixed-TTL queue read only from its head, so reaching one message means holding every one
before it, and the message may already have left for its work queue or a worker. It
revokes the task id instead, through the revocation stream, so every worker, running now or
started later, discards it when it arrives. A revocation lasts at most a day, so a task due
later than that cannot be cancelled yet.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from hare.app import Hare
from hare.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_app_argument,
    app_path,
    fail,
    load_app,
    run_job,
    table,
)
from hare.cli.ladder_view import Delayed, browse
from hare.cli.progress import Progress
from hare.control.client import Control
from hare.control.revocation import MAX_TTL
from hare.errors import ConfigurationError

__all__ = ("add_delayed_parser", "run_delayed")

#: How long past its due time a cancel's revocation lasts (a worker may be down meanwhile).
MARGIN = 3600.0


def add_delayed_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "delayed",
        help="list, show or cancel tasks waiting in the delay ladder (countdown, eta, retries)",
        description=__doc__.split("\n\n", 1)[1],
    )
    actions = parser.add_subparsers(dest="delayed_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each delayed task: due, task, id, queue")
    add_app_argument(listing)
    listing.add_argument("--queue", help="only those going to this work queue")
    listing.add_argument(
        "--limit",
        type=int,
        default=200,
        help="messages read per ladder level (default 200; 0: all, which holds them longer)",
    )
    show = actions.add_parser("show", help="one delayed task in full")
    add_app_argument(show)
    show.add_argument("id", help="the task id")
    cancel = actions.add_parser("cancel", help="revoke a delayed task: no worker will run it")
    add_app_argument(cancel)
    cancel.add_argument("id", help="the task id")


def run_delayed(args: argparse.Namespace) -> int:
    command = f"delayed {args.delayed_command}"
    try:
        if getattr(args, "limit", 0) < 0:
            raise UsageError("--limit must be 0 (all) or more")
        app = load_app(app_path(args))
    except (UsageError, ConfigurationError) as exc:
        return fail(command, exc, EXIT_USAGE)
    job = {"list": _list, "show": _show, "cancel": _cancel}[args.delayed_command]
    return run_job(command, job(app, args))


async def _list(app: Hare, args: argparse.Namespace) -> int:
    progress = Progress("reading the delay ladder")
    try:
        read, depths = await browse(app, limit=args.limit or None, progress=progress)
    finally:
        progress.clear()
    total = sum(depths.values())
    shown = [d for d in read if args.queue is None or d.queue == args.queue]
    shown.sort(key=lambda d: (d.due is None, d.due or datetime.min.replace(tzinfo=UTC)))
    now = app.clock.time()
    rows: list[tuple[str, ...]] = [("due (UTC)", "in", "task", "id", "queue", "where")]
    rows += [(_iso(d.due), _in(d.due, now), d.task or "?", d.id, d.queue, _place(d)) for d in shown]
    if shown:
        for line in table(rows):
            print(line)
    levels = ", ".join(f"{queue.rsplit('.', 1)[-1]} {n}" for queue, n in depths.items())
    print(f"{total} delayed message{'' if total == 1 else 's'} in the ladder ({levels or 'none'})")
    if len(read) < total:
        print(f"read {len(read)} of them (--limit {args.limit} per level; --limit 0 reads all)")
    return EXIT_OK


async def _find(app: Hare, task_id: str) -> Delayed | None:
    read, _ = await browse(app, limit=None, stop=lambda d: d.id == task_id)
    return read[-1] if read and read[-1].id == task_id else None


async def _show(app: Hare, args: argparse.Namespace) -> int:
    found = await _find(app, args.id)
    if found is None:
        return fail("delayed show", f"no task {args.id!r} in the delay ladder", EXIT_FAILED)
    message, properties = found.message, found.delivery.properties
    fields: dict[str, Any] = {
        "task": found.task or "?",
        "id": found.id,
        "queue": found.queue,
        "due": f"{_iso(found.due)} ({_in(found.due, app.clock.time())})",
        "where": _place(found),
    }
    if message is not None:
        fields.update(retries=message.retries, args=message.args, kwargs=dict(message.kwargs))
        fields["expires"] = _iso(message.expires) if message.expires else "-"
    else:
        fields["body"] = f"cannot be decoded: {found.delivery.body[:200]!r}"
    for name, value in fields.items():
        print(f"{name + ':':<9} {value}")
    print("headers:")
    for key, value in properties.headers.items():
        print(f"  {key}: {value!r}")
    return EXIT_OK


async def _cancel(app: Hare, args: argparse.Namespace) -> int:
    found = await _find(app, args.id)
    now = app.clock.time()
    wait = None if found is None or found.due is None else found.due.timestamp() - now
    if wait is not None and wait + MARGIN > MAX_TTL:
        return fail(
            "delayed cancel",
            f"{args.id} is due in {_span(wait)}; a revocation lasts at most "
            f"{_span(MAX_TTL)}, so run this again within {_span(MAX_TTL - MARGIN)} of its due "
            "time (it cannot be taken out of the ladder safely)",
            EXIT_FAILED,
        )
    ttl = MAX_TTL if wait is None else max(MARGIN, wait + MARGIN)
    transport = app.make_transport()
    await transport.connect()
    try:
        await Control(transport, clock=app.clock).revoke(args.id, ttl=ttl)
    finally:
        await transport.close()
    if found is None:
        print(
            f"{args.id} is not in the delay ladder (it may be in its work queue or running); "
            f"revoked it for {_span(ttl)}: no worker starts it"
        )
    else:
        print(
            f"revoked {args.id} ({found.task}, due {_iso(found.due)}): the worker that gets it "
            "discards it on arrival; until then it stays in the ladder"
        )
    return EXIT_OK


def _place(delayed: Delayed) -> str:
    return "parked: its queue is not bound" if delayed.parked else delayed.place


def _iso(moment: datetime | None) -> str:
    return "?" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in(due: datetime | None, now: float) -> str:
    if due is None:
        return "?"
    wait = due.timestamp() - now
    return "due now" if wait <= 0 else _span(wait)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"
