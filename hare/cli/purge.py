"""`hare purge APP QUEUE...`: drop every waiting message of work queues, after a confirmation.

It says how many messages each queue holds and asks before it drops them (`-f/--force`
skips the question). Only ready messages go: those a worker holds unacknowledged stay. A
queue's priority band (`<queue>.high`) is purged with it. The delay ladder and the schedule
slots are hare's own and are refused (`hare delayed cancel`
revokes a delayed task); dead letters have `hare dlq purge`, which can keep the recent ones.
"""

from __future__ import annotations

import argparse
import sys

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
)
from hare.core import ladder
from hare.core.priority import band_queues
from hare.core.topology import DEAD_SUFFIX
from hare.errors import ConfigurationError, NotFound
from hare.periodic import ticks
from hare.transport.base import Transport

__all__ = ("add_purge_parser", "run_purge")


def add_purge_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "purge",
        help="drop every waiting message of one or more queues (asks first)",
        description=__doc__.split("\n\n", 1)[1],
    )
    add_app_argument(parser)
    parser.add_argument("queues", nargs="+", metavar="QUEUE", help="the queue(s) to purge")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask: purge")


def run_purge(args: argparse.Namespace) -> int:
    try:
        for queue in args.queues:
            if queue.startswith((ladder.PREFIX + ".", ticks.PREFIX + ".", ticks.V1_PREFIX + ".")):
                raise UsageError(f"{queue} is hare's own (delay ladder or schedules); not purged")
        app = load_app(app_path(args))
    except (UsageError, ConfigurationError) as exc:
        return fail("purge", exc, EXIT_USAGE)
    queues = list(dict.fromkeys(args.queues))
    return run_job("purge", _purge(app, queues, args.force), usage=(NotFound,))


async def _purge(app: Hare, queues: list[str], force: bool) -> int:
    transport = app.make_transport()
    await transport.connect()
    try:
        counts = {queue: await transport.message_count(queue) for queue in queues}
        if app.settings.bands:  # else `<queue>.high` may be a queue of its own
            counts.update(await _bands(transport, queues))
        total = sum(counts.values())
        for queue, count in counts.items():
            print(f"{queue}: {count} message{'' if count == 1 else 's'} waiting")
        if total == 0:
            print("nothing to purge")
            return EXIT_OK
        if not force and not _confirmed(total, len(counts)):
            print("not confirmed: nothing purged", file=sys.stderr)
            return EXIT_FAILED
        for queue in counts:
            dropped = await transport.purge(queue)
            print(f"purged {dropped} message{'' if dropped == 1 else 's'} from {queue}")
    finally:
        await transport.close()
    return EXIT_OK


async def _bands(transport: Transport, queues: list[str]) -> dict[str, int]:
    """The priority bands of `queues` that exist (`<queue>.high`), with their counts: purging
    a queue purges what waits in its band too."""
    found: dict[str, int] = {}
    for queue in queues:
        if queue.endswith(DEAD_SUFFIX):
            continue
        for band in band_queues(queue)[1:]:
            if band in queues:
                continue
            try:
                found[band] = await transport.message_count(band)
            except NotFound:
                continue
    return found


def _confirmed(total: int, queues: int) -> bool:
    where = "1 queue" if queues == 1 else f"{queues} queues"
    sys.stderr.write(f"Drop {total} messages from {where} for good? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
