"""`hare status APP`: the broker, the workers, each queue, the delay ladder and the schedules.

* workers: those that answer the pidbox and consume any of the app's queues (others on the
  same broker are only counted);
* queues: the app's, as a worker without `-Q` consumes them (event handlers' included);
  ready messages from the broker (a passive declare), unacked and consumers from RabbitMQ's
  management API when it answers. When it does not, unacked is shown as `?` and the
  consumers column counts the workers that said they consume the queue: AMQP does not tell
  how many messages are delivered and unacknowledged.
* events: how many wait in `hare.events.unhandled`, emitted with no handler bound for them;
* the delay ladder: how many delayed messages wait, per level, and, when there are at most
  `LADDER_READ` of them, when the next one is due: read as `hare delayed list` reads them,
  each held for a moment (`hare.cli.ladder_view`);
* schedules: the spec the fleet runs, read from each pending tick (`hare.cli.schedules`).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from hare.app import Hare
from hare.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_app_argument,
    app_path,
    as_hare,
    describe_broker,
    fail,
    load_object,
    not_an_app,
    run_job,
    seconds,
    table,
    worker_defaults,
)
from hare.cli.ladder_view import browse, depths
from hare.cli.management import QueueStats, fetch, management_url
from hare.cli.queues import app_queues, with_bands
from hare.cli.schedules import schedule_rows
from hare.control.client import Control
from hare.core.deadletter import dead_queue_name
from hare.errors import ConfigurationError, NotFound
from hare.events.names import UNHANDLED_QUEUE
from hare.transport.base import Transport

__all__ = ("add_status_parser", "run_status")

_DESCRIPTION = """\
What an operator looks at first: the broker and vhost, the workers that answer, each
of the app's queues with its ready and unacked messages, consumers and dead letters,
the tasks waiting in the delay ladder, and the periodic schedules as the fleet runs
them.

Unacked messages are known only to RabbitMQ's management API (port 15672); when it
does not answer, status says so, shows '?', and counts the workers that say they
consume each queue instead of the broker's consumers."""

#: Up to this many delayed messages, `status` reads them all to say when the next is due.
LADDER_READ = 200


def add_status_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="the broker, workers, queues, dead letters, delayed tasks and schedules",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_app_argument(parser)
    parser.add_argument(
        "-t",
        "--timeout",
        type=seconds(positive=True, most=3600),
        default=1.0,
        help="seconds to wait for workers (1)",
    )
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help="RabbitMQ's management API (default: http://<broker host>:15672, the broker's "
        "user and password)",
    )


def run_status(args: argparse.Namespace) -> int:
    try:
        path = app_path(args)
        obj = load_object(path)
        app = as_hare(obj) or not_an_app(path)
        queues = with_bands(app, app_queues(app, worker_defaults(obj).get("queues")))
    except (UsageError, ConfigurationError) as exc:
        return fail("status", exc, EXIT_USAGE)
    print(f"broker:   {describe_broker(app.settings.broker_url)}")
    return run_job("status", _print(app, queues, args))


async def _print(app: Hare, queues: list[str], args: argparse.Namespace) -> int:
    for line in await _report(app, queues, args):
        print(line)
    return EXIT_OK


async def _report(app: Hare, queues: list[str], args: argparse.Namespace) -> list[str]:
    url = app.settings.broker_url
    api = None
    if url.startswith(("amqp://", "amqps://")):
        api = asyncio.create_task(fetch(args.management_url or management_url(url), url))
    transport = app.make_transport()
    await transport.connect()
    try:
        inspect = Control(transport).inspect(timeout=args.timeout)
        consuming = _consuming(await inspect.active_queues() or {})
        lines = _workers(consuming, queues)
        stats = await api if api is not None else "the broker has no management API"
        lines += await _queues(transport, queues, consuming, stats)
        lines += await _unhandled(transport, app)
        waiting = await depths(transport)
    finally:
        await transport.close()
    lines += await _ladder(app, waiting)
    if app.periodics:
        lines += ["schedules:", *("  " + line for line in table(await schedule_rows(app)))]
    return lines


def _consuming(replies: dict[str, Any]) -> dict[str, list[str]]:
    """Each answering node's queues, from `active_queues` replies."""
    found = {}
    for node, answer in replies.items():
        items = answer if isinstance(answer, list) else []
        found[node] = [str(q.get("name")) for q in items if isinstance(q, dict)]
    return found


def _workers(consuming: dict[str, list[str]], queues: list[str]) -> list[str]:
    """The nodes that consume any of the app's queues; others on the broker only counted."""
    ours = sorted(node for node, names in consuming.items() if set(names) & set(queues))
    others = len(consuming) - len(ours)
    line = f"workers:  {len(ours)} consuming these queues" + (
        f": {', '.join(ours)}" if ours else ""
    )
    return [line + (f" ({others} other{'' if others == 1 else 's'} answered)" if others else "")]


async def _queues(
    transport: Transport,
    names: list[str],
    consuming: dict[str, list[str]],
    stats: dict[str, QueueStats] | str,
) -> list[str]:
    known = isinstance(stats, dict)
    rows: list[tuple[str, ...]] = [
        ("queue", "ready", "unacked", "consumers" if known else "workers", "dead letters")
    ]
    for name in names:
        ready, dead = await _count(transport, name), await _count(transport, dead_queue_name(name))
        if isinstance(stats, dict) and name in stats:
            unacked, consumers = str(stats[name].unacked), str(stats[name].consumers)
        else:
            unacked = "?"
            consumers = str(sum(name in queues for queues in consuming.values()))
        rows.append((name, ready, unacked, consumers, dead))
    lines = ["queues:", *("  " + line for line in table(rows))]
    if not known:
        lines.append(
            f"  unacked: unknown, {stats}; AMQP does not tell it. WORKERS counts the workers "
            "that answered and consume the queue (--management-url for the broker's counts)"
        )
    return lines


async def _unhandled(transport: Transport, app: Hare) -> list[str]:
    """How many events wait with no handler bound for them (`hare.events`)."""
    parked = await _count(transport, UNHANDLED_QUEUE)
    if parked == "-" and not app.events:
        return []
    return [f"events:   {parked} unhandled in {UNHANDLED_QUEUE} (hare events list APP)"]


async def _count(transport: Transport, queue: str) -> str:
    try:
        return str(await transport.message_count(queue))
    except NotFound:
        return "-"


async def _ladder(app: Hare, waiting: dict[str, int]) -> list[str]:
    total = sum(waiting.values())
    if not total:
        return ["delayed:  none in the delay ladder"]
    levels = ", ".join(f"{queue.rsplit('.', 1)[-1]} {n}" for queue, n in waiting.items())
    line = f"delayed:  {total} in the delay ladder ({levels})"
    read = (await browse(app, limit=None))[0] if total <= LADDER_READ else []
    dues = [d.due for d in read if d.due is not None]
    if dues:
        line += f"; next due {min(dues).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return [line, "          (hare delayed APP list shows each)"]
