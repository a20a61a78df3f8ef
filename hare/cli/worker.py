"""`hare worker`: run an app's tasks until a signal drains it; `--processes N` supervises N."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from hare.cli.common import (
    EXIT_BROKER,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    as_hare,
    load_object,
    not_an_app,
    worker_defaults,
)
from hare.control.pidbox import expand_nodename
from hare.errors import BrokerUnavailable, ConfigurationError, HareError
from hare.worker.health import Health, HealthServer, worker_health, write_status
from hare.worker.loops import LOOPS, loop_factory
from hare.worker.loops import run as run_on_loop
from hare.worker.supervisor import PROCESS_INDEX_ENV, STATUS_ENV, Supervisor, child_command
from hare.worker.worker import Worker

__all__ = ("add_worker_parser", "run_worker")

logger = logging.getLogger("hare.cli")


def add_worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`hare worker APP [options]`."""
    parser = commands.add_parser("worker", help="run tasks from one or more queues")
    parser.add_argument("app", help="MODULE:ATTR of the app, or MODULE holding one app")
    parser.add_argument("-Q", "--queues", help="comma-separated queues (default: the app's)")
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=None,
        help="tasks run at once, and the prefetch of each queue (default: the app's, else 16)",
    )
    parser.add_argument(
        "-n",
        "--hostname",
        help="this worker's node name, as Celery's -n: %%h (host), %%n (its first label), "
        "%%d (domain), %%i (process index); default hare.<pid>@<host>",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="independent worker processes, supervised and restarted if they die (default 1)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        help="serve /livez and /readyz on this port (for Kubernetes probes)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds running tasks get to finish on SIGTERM before they are requeued (30)",
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=LOOPS,
        help="event loop: uvloop when installed (auto, the default), or insist on one",
    )
    parser.add_argument(
        "--loglevel",
        "-l",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )


def run_worker(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Run the worker `args` describe; the exit code."""
    logging.basicConfig(
        level=getattr(logging, args.loglevel.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.processes < 1:
        print("hare: --processes must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        obj = load_object(args.app)
        app = as_hare(obj) or not_an_app(args.app)
        defaults = worker_defaults(obj)
        queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
        worker = Worker(
            app,
            queues=queues or defaults.get("queues"),
            concurrency=args.concurrency or defaults.get("concurrency", 16),
            drain_timeout=args.drain_timeout,
            nodename=_nodename(args.hostname),
        )
        loop_name, factory = loop_factory(args.loop)
    except ConfigurationError as exc:
        print(f"hare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.processes > 1:
        command = child_command(sys.argv[1:] if argv is None else list(argv))
        return asyncio.run(Supervisor(command, args.processes, health_port=args.health_port).run())
    logger.info("event loop: %s", loop_name)
    try:
        run_on_loop(_run_worker(worker, args.health_port), factory)
    except BrokerUnavailable as exc:
        print(f"hare: {exc}", file=sys.stderr)
        return EXIT_BROKER
    except HareError as exc:
        print(f"hare: worker failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _exit_past_stuck_threads(worker, EXIT_OK)
    return EXIT_OK


def _nodename(template: str | None) -> str | None:
    """The node name `-n` asks for (a `--processes` child adds its index), or None."""
    if not template:
        return None
    index = os.environ.get(PROCESS_INDEX_ENV)
    return expand_nodename(template, socket.gethostname(), int(index) if index else None)


def _exit_past_stuck_threads(worker: Worker, code: int) -> None:
    """Exit now if a sync task still runs in a thread after the drain.

    Its delivery was already requeued (or, past its hard time limit, settled); a thread cannot
    be killed, and the interpreter would otherwise wait for it at exit, hanging the deploy.
    """
    if worker.busy_threads:
        logger.warning("exiting with %d sync task(s) still running in threads", worker.busy_threads)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


async def _run_worker(worker: Worker, health_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    status_file = os.environ.get(STATUS_ENV)
    if status_file:  # a child of `--processes`: report to the supervisor
        worker.on_state_change.append(lambda w: write_status(status_file, _health(w)))
    server = HealthServer(health_port, lambda: _health(worker)) if health_port else None
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.warning(
                "%s received: draining (a second signal stops at once)", signal.Signals(signum).name
            )
            worker.stop()
        else:
            logger.warning("second signal: stopping at once")
            os._exit(EXIT_FAILED)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    if server is not None:
        await server.start()
    try:
        await worker.run()
    finally:
        if server is not None:
            await server.close()


def _health(worker: Worker) -> Health:
    since = worker.disconnected_since
    now = worker.app.clock.monotonic()
    return worker_health(worker.state, None if since is None else now - since)
