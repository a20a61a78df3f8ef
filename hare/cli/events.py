"""`hare events list|remove APP`: the app's event handlers, their queues, and removing the
queue a removed handler left behind.

* `list`: each handler's patterns, task and queue, the queue's ready messages and dead
  letters, and how many events wait unhandled in `hare.events.unhandled`. With `--orphans`,
  the bindings of the `hare.events` exchange (read from RabbitMQ's management API, when it
  answers) whose queue is named as this app's handler queues are (`hare.ev.<app>.`) but that
  no current handler declares: a handler removed or renamed in a deploy.
* `remove QUEUE` (or `--orphans`): delete a handler queue and its `.dead`, after saying what
  they hold and asking (`--yes` does not ask). A queue a current handler declares is refused:
  the next worker start would declare it again.
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
    table,
)
from hare.cli.management import fetch_bindings, management_url
from hare.core.topology import DEAD_SUFFIX
from hare.errors import ConfigurationError, NotFound
from hare.events.names import EXCHANGE, UNHANDLED_QUEUE, handler_queue_name
from hare.transport.base import Transport

__all__ = ("add_events_parser", "run_events")


def add_events_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "events",
        help="the app's event handlers and their queues; remove a removed handler's queue",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="events_command", required=True)
    listing = actions.add_parser("list", help="handlers, patterns, queues, depths")
    remove = actions.add_parser("remove", help="delete a handler queue nobody handles")
    for sub in (listing, remove):
        add_app_argument(sub)
        sub.add_argument(
            "--orphans",
            action="store_true",
            help="the bindings of hare.events to this app's handler queues that no handler "
            "declares now (RabbitMQ's management API)",
        )
        sub.add_argument("--management-url", metavar="URL", help="as `hare status` takes it")
    remove.add_argument("queue", nargs="?", metavar="QUEUE", help="the handler queue to delete")
    remove.add_argument("--yes", action="store_true", help="do not ask: delete")


def run_events(args: argparse.Namespace) -> int:
    command = args.events_command
    try:
        spill = "queue" if command == "remove" else None
        app = load_app(app_path(args, spill=spill))
        if command == "remove" and not args.queue and not args.orphans:
            raise UsageError("name the queue to remove, or give --orphans")
    except (UsageError, ConfigurationError) as exc:
        return fail(f"events {command}", exc, EXIT_USAGE)
    job = _list(app, args) if command == "list" else _remove(app, args)
    return run_job(f"events {command}", job, usage=(UsageError, NotFound))


async def _list(app: Hare, args: argparse.Namespace) -> int:
    transport = app.make_transport()
    await transport.connect()
    try:
        rows: list[tuple[str, ...]] = [("queue", "patterns", "handler", "ready", "dead letters")]
        for handler in app.events.handlers():
            ready = await _count(transport, handler.queue)
            dead = await _count(transport, handler.queue + DEAD_SUFFIX)
            rows.append((handler.queue, " ".join(handler.patterns), handler.task.name, ready, dead))
        unhandled = await _count(transport, UNHANDLED_QUEUE)
    finally:
        await transport.close()
    if len(rows) > 1:
        print("\n".join(table(rows)))
    else:
        print("no event handlers in this app")
    print(f"unhandled: {unhandled} event(s) parked in {UNHANDLED_QUEUE}")
    if args.orphans:
        orphans = await _orphans(app, args)
        for queue, patterns in sorted(orphans.items()):
            print(f"orphan: {queue} (bound with {' '.join(sorted(patterns))}; no handler now)")
        if not orphans:
            print("orphans: none")
    return EXIT_OK


async def _remove(app: Hare, args: argparse.Namespace) -> int:
    queues = [args.queue] if args.queue else sorted(await _orphans(app, args))
    for queue in queues:
        handler = app.events.handler_for(queue)
        if handler is not None:
            raise UsageError(
                f"{queue} is the queue of handler {handler.task.name} now: remove the handler "
                "from the app first, or the next worker start declares it again"
            )
    if not queues:
        print("no orphan handler queues: nothing to remove")
        return EXIT_OK
    transport = app.make_transport()
    await transport.connect()
    try:
        queues = await _unconsumed(transport, queues)
        if not queues:
            return EXIT_FAILED
        for queue in queues:
            ready = await transport.message_count(queue)  # NotFound: no such queue
            dead = await _count(transport, queue + DEAD_SUFFIX)
            print(f"{queue}: {ready} event(s) waiting, {dead} dead letter(s) in {queue}.dead")
        if not args.yes and not _confirmed(len(queues)):
            print("not confirmed: nothing removed", file=sys.stderr)
            return EXIT_FAILED
        for queue in queues:
            await transport.delete_queue(queue)
            await transport.delete_queue(queue + DEAD_SUFFIX)
            print(f"removed {queue} and {queue}{DEAD_SUFFIX}")
    finally:
        await transport.close()
    return EXIT_OK


async def _orphans(app: Hare, args: argparse.Namespace) -> dict[str, set[str]]:
    """The queues bound to `hare.events` named as this app's handler queues that no handler
    declares now, with their patterns; `UsageError` when the management API does not say."""
    url = app.settings.broker_url
    if not url.startswith(("amqp://", "amqps://")):
        raise UsageError("--orphans reads RabbitMQ's management API: an amqp:// broker only")
    found = await fetch_bindings(args.management_url or management_url(url), url, EXCHANGE)
    if isinstance(found, str):
        raise UsageError(f"--orphans: {found}")
    prefix = handler_queue_name(app.main, "")
    current = set(app.events.queues())
    orphans: dict[str, set[str]] = {}
    for binding in found:
        if binding.queue.startswith(prefix) and binding.queue not in current:
            orphans.setdefault(binding.queue, set()).add(binding.routing_key)
    return orphans


async def _unconsumed(transport: Transport, queues: list[str]) -> list[str]:
    """`queues` without those a worker still consumes: a worker of an older deploy, or of
    another app whose name starts with this one's (`shop.billing`'s queues look like `shop`'s
    `hare.ev.shop.billing...`), still handles them."""
    kept = []
    for queue in queues:
        consumers = await transport.consumer_count(queue)  # NotFound: no such queue
        if consumers:
            print(
                f"kept {queue}: {consumers} consumer(s) still read it (a worker of an older "
                "deploy, or of another app); stop them first",
                file=sys.stderr,
            )
        else:
            kept.append(queue)
    return kept


async def _count(transport: Transport, queue: str) -> str:
    try:
        return str(await transport.message_count(queue))
    except NotFound:
        return "-"


def _confirmed(queues: int) -> bool:
    sys.stderr.write(f"Delete {queues} queue(s) and their dead letters for good? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
