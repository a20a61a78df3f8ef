"""`hare dashboard APP`: serve the operators' web page (`hare.dashboard`, docs/dashboard.md).

Parsing and the checks that need no web framework happen here; the server (Starlette, Jinja2,
uvicorn: the `dashboard` extra) is imported only once they passed.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from hare.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_app_argument,
    app_path,
    as_hare,
    fail,
    load_object,
    not_an_app,
    seconds,
    whole_number,
    worker_defaults,
)
from hare.cli.management import management_url
from hare.cli.queues import app_queues, with_bands
from hare.errors import ConfigurationError

if TYPE_CHECKING:
    from hare.dashboard.site import Config

__all__ = ("add_dashboard_parser", "run_dashboard")

TOKEN_ENV = "HARE_DASHBOARD_TOKEN"

_DESCRIPTION = """\
A web page for operators: queues (ready, unacked, consumers, rates, dead letters), event
handler queues, workers (concurrency, running tasks, processed counts, uptime), recent
tasks from task events (workers started with -E), dead letters (show, replay, purge, each
confirmed), the delay ladder and the periodic schedules. Pages update live.

It binds 127.0.0.1 unless --host says otherwise. Actions (replay, purge) always need the
token: --token, or $HARE_DASHBOARD_TOKEN, or one generated and printed at start. Bound
beyond loopback (--host 0.0.0.0), viewing needs the token too, and the dashboard refuses to
start without one. Unacked counts and rates need RabbitMQ's management plugin."""


def add_dashboard_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="a web page for operators: queues, workers, tasks, dead letters, schedules",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_app_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--port", type=whole_number(0, 65535), default=5555, help="port (5555; 0: any free one)"
    )
    parser.add_argument(
        "--token", help=f"the token for actions, and for viewing beyond loopback (${TOKEN_ENV})"
    )
    parser.add_argument(
        "--refresh",
        type=seconds(positive=True, most=3600),
        default=3.0,
        help="seconds between live updates (3)",
    )
    parser.add_argument(
        "--no-events",
        dest="events",
        action="store_false",
        help="do not consume task events (celeryev) for the recent tasks page",
    )
    parser.add_argument("--management-url", metavar="URL", help="as `hare status` takes it")


def run_dashboard(args: argparse.Namespace) -> int:
    try:
        path = app_path(args)
        obj = load_object(path)
        app = as_hare(obj) or not_an_app(path)
        queues = with_bands(app, app_queues(app, worker_defaults(obj).get("queues")))
        token = args.token or os.environ.get(TOKEN_ENV) or None
        from hare.dashboard.security import check_bind, new_secret

        check_bind(args.host, token)
    except (UsageError, ConfigurationError) as exc:
        return fail("dashboard", exc, EXIT_USAGE)
    try:
        from hare.dashboard.serve import address, bind, serve
        from hare.dashboard.site import Config
    except ImportError as exc:
        return fail(
            "dashboard",
            f"{exc}: install the extra: pip install 'hare-queue[dashboard]'",
            EXIT_USAGE,
        )
    url = app.settings.broker_url
    amqp = url.startswith(("amqp://", "amqps://"))
    config = Config(
        host=args.host,
        token=token or new_secret(),
        queues=queues,
        management=args.management_url or (management_url(url) if amqp else None),
        refresh=args.refresh,
        events=args.events,
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        return fail("dashboard", f"cannot listen on {args.host}:{args.port}: {exc}", EXIT_FAILED)
    _banner(app.main or "app", address(sock), config, given=token is not None)
    serve(app, config, sock)
    return EXIT_OK


def _banner(name: str, url: str, config: Config, *, given: bool) -> None:
    print(f"hare dashboard: {name} on {url} (Ctrl-C stops)", flush=True)
    if not given:
        print(
            f"hare dashboard: token for actions (replay, purge): {config.token} "
            f"(generated; --token or ${TOKEN_ENV} sets one)",
            flush=True,
        )
    if config.view_needs_token:
        print("hare dashboard: viewing needs the token too (bound beyond loopback)", flush=True)
