"""`hare inspect APP ping|active|registered|stats|revoked`: ask the running workers.

Over the pidbox (Celery's remote-control protocol, `hare.control.client`), so Celery workers
on the same broker answer too. Each node's answer is printed under its name; `--json` prints
them as one JSON object. Exit 1 when no worker answered within `--timeout`.
"""

from __future__ import annotations

import argparse
import json
import sys
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
    seconds,
)
from hare.control.client import Control
from hare.errors import ConfigurationError

__all__ = ("add_inspect_parser", "run_inspect")

METHODS = {
    "ping": "which workers answer",
    "active": "the tasks each worker is running",
    "registered": "the tasks each worker knows",
    "stats": "each worker's pool, counters and broker",
    "revoked": "the task ids each worker holds as revoked",
    "active_queues": "the queues each worker consumes",
}


def add_inspect_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "inspect",
        help="ask the running workers: ping, active, registered, stats, revoked",
        description=__doc__.split("\n\n", 1)[1]
        + "\n\nmethods:\n"
        + "\n".join(f"  {name:<14}{text}" for name, text in METHODS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_app_argument(parser)
    parser.add_argument("method", choices=list(METHODS), metavar="METHOD", help="see above")
    parser.add_argument(
        "-t",
        "--timeout",
        type=seconds(positive=True, most=3600),
        default=1.0,
        help="seconds to wait for answers (1)",
    )
    parser.add_argument(
        "-d",
        "--destination",
        help="comma-separated node names to ask (default: every worker)",
    )
    parser.add_argument("--json", action="store_true", help="print the answers as JSON")


def run_inspect(args: argparse.Namespace) -> int:
    try:
        app = load_app(app_path(args))
    except (UsageError, ConfigurationError) as exc:
        return fail("inspect", exc, EXIT_USAGE)
    destination = [n.strip() for n in (args.destination or "").split(",") if n.strip()] or None
    return run_job("inspect", _ask(app, args, destination))


async def _ask(app: Hare, args: argparse.Namespace, destination: list[str] | None) -> int:
    transport = app.make_transport()
    await transport.connect()
    try:
        inspect = Control(transport).inspect(destination, timeout=args.timeout)
        replies = await inspect.request(args.method) or {}
    finally:
        await transport.close()
    if not replies:
        return fail("inspect", f"no worker answered within {args.timeout:g} s", EXIT_FAILED)
    if args.json:
        print(json.dumps(replies, indent=2, sort_keys=True, default=str))
    else:
        for node, answer in sorted(replies.items()):
            print(f"{node}:{_render(args.method, answer)}")
    print(f"{len(replies)} node{'' if len(replies) == 1 else 's'} answered", file=sys.stderr)
    return EXIT_OK


def _render(method: str, answer: Any) -> str:
    """One node's answer, readable: a list one item a line, a mapping as indented JSON."""
    if method == "ping" and isinstance(answer, dict):
        return f" {answer.get('ok', answer)}"
    if isinstance(answer, list):
        if not answer:
            return " (none)"
        if method == "active_queues":
            answer = [q.get("name", q) if isinstance(q, dict) else q for q in answer]
        items = [json.dumps(a, default=str) if isinstance(a, dict) else str(a) for a in answer]
        return "".join(f"\n  - {item}" for item in items)
    text = json.dumps(answer, indent=2, sort_keys=True, default=str)
    return "\n  " + text.replace("\n", "\n  ")
