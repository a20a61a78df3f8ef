"""`hare` on the command line: parse, load the app, delegate, map the outcome to an exit code.

Exit codes: 0 clean stop; 1 the worker failed (e.g. lost its broker for good); 2 bad usage or
an app that cannot be loaded; 3 the broker could not be reached at start.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from hare.app import Hare
from hare.control.pidbox import expand_nodename
from hare.errors import BrokerUnavailable, ConfigurationError, HareError
from hare.worker.health import Health, HealthServer, worker_health, write_status
from hare.worker.loops import LOOPS, loop_factory
from hare.worker.loops import run as run_on_loop
from hare.worker.supervisor import PROCESS_INDEX_ENV, STATUS_ENV, Supervisor, child_command
from hare.worker.worker import Worker

__all__ = ("load_app", "main")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BROKER = 0, 1, 2, 3

logger = logging.getLogger("hare.cli")


def as_hare(obj: object) -> Hare | None:
    """`obj` as a hare app: a `Hare`, or an object that makes one (`obj.__hare_app__()`).

    The second form is how other front ends (hare_compat's `Celery`) hand the CLI the app
    they configured, without hare knowing them.
    """
    if isinstance(obj, Hare):
        return obj
    make = getattr(type(obj), "__hare_app__", None)
    if make is None:
        return None
    app = make(obj)
    if not isinstance(app, Hare):
        raise ConfigurationError(f"{type(obj).__name__}.__hare_app__() did not return a hare app")
    return app


def worker_defaults(obj: object) -> dict[str, Any]:
    """Worker options an app object proposes (`obj.worker_options()`): concurrency, queues."""
    propose = getattr(type(obj), "worker_options", None)
    return dict(propose(obj)) if propose is not None else {}


def load_app(path: str) -> Hare:
    """Import `module:attr` (or `module` holding exactly one app) and return the app."""
    return as_hare(load_object(path)) or _not_an_app(path)


def _not_an_app(path: str) -> Hare:
    raise ConfigurationError(f"{path} is not a hare app")


def load_object(path: str) -> object:
    """Import `module:attr` (or `module` holding exactly one app) and return that object."""
    module_name, _, attr = path.partition(":")
    if not module_name:
        raise ConfigurationError(f"{path!r} is not MODULE or MODULE:ATTR")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (looked in {sys.path[0]!r} and the "
                f"installed packages): {exc}"
            ) from exc
        raise
    if attr:
        app = getattr(module, attr, None)
        if isinstance(app, Hare) or hasattr(type(app), "__hare_app__"):
            return app
        found = "nothing" if app is None else type(app).__name__
        raise ConfigurationError(f"{module_name}:{attr} is {found}, not a hare app")
    apps = {
        id(v): v
        for v in vars(module).values()
        if isinstance(v, Hare) or hasattr(type(v), "__hare_app__")
    }
    if len(apps) != 1:
        raise ConfigurationError(
            f"module {module_name!r} holds {len(apps)} hare apps; name one as {module_name}:ATTR"
        )
    return next(iter(apps.values()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hare", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run tasks from one or more queues")
    worker.add_argument("app", help="MODULE:ATTR of the app, or MODULE holding one app")
    worker.add_argument("-Q", "--queues", help="comma-separated queues (default: the app's)")
    worker.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=None,
        help="tasks run at once, and the prefetch of each queue (default: the app's, else 16)",
    )
    worker.add_argument(
        "-n",
        "--hostname",
        help="this worker's node name, as Celery's -n: %%h (host), %%n (its first label), "
        "%%d (domain), %%i (process index); default hare.<pid>@<host>",
    )
    worker.add_argument(
        "--processes",
        type=int,
        default=1,
        help="independent worker processes, supervised and restarted if they die (default 1)",
    )
    worker.add_argument(
        "--health-port",
        type=int,
        help="serve /livez and /readyz on this port (for Kubernetes probes)",
    )
    worker.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds running tasks get to finish on SIGTERM before they are requeued (30)",
    )
    worker.add_argument(
        "--loop",
        default="auto",
        choices=LOOPS,
        help="event loop: uvloop when installed (auto, the default), or insist on one",
    )
    worker.add_argument(
        "--loglevel",
        "-l",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )
    from hare.cli.dlq import add_dlq_parser  # here: hare.cli.dlq imports this module

    add_dlq_parser(commands)
    from hare.cli.schedules import add_schedules_parser

    add_schedules_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hare` command."""
    args = _parser().parse_args(argv)
    if args.command == "dlq":
        from hare.cli.dlq import run_dlq

        return run_dlq(args)
    if args.command == "schedules":
        from hare.cli.schedules import run_schedules

        return run_schedules(args)
    logging.basicConfig(
        level=getattr(logging, args.loglevel.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.processes < 1:
        print("hare: --processes must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        obj = load_object(args.app)
        app = as_hare(obj) or _not_an_app(args.app)
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
