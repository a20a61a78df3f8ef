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
import sys
from collections.abc import Sequence

from hare.app import Hare
from hare.errors import BrokerUnavailable, ConfigurationError, HareError
from hare.worker import Worker

__all__ = ("load_app", "main")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BROKER = 0, 1, 2, 3

logger = logging.getLogger("hare.cli")


def load_app(path: str) -> Hare:
    """Import `module:attr` (or `module` holding exactly one app) and return the app."""
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
        if not isinstance(app, Hare):
            found = "nothing" if app is None else type(app).__name__
            raise ConfigurationError(f"{module_name}:{attr} is {found}, not a hare app")
        return app
    apps = {id(v): v for v in vars(module).values() if isinstance(v, Hare)}
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
        default=16,
        help="tasks run at once, and the prefetch of each queue (default 16)",
    )
    worker.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds running tasks get to finish on SIGTERM before they are requeued (30)",
    )
    worker.add_argument(
        "--loglevel",
        "-l",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hare` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.loglevel.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        app = load_app(args.app)
        queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
        worker = Worker(
            app, queues=queues, concurrency=args.concurrency, drain_timeout=args.drain_timeout
        )
    except ConfigurationError as exc:
        print(f"hare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(_run_worker(worker))
    except BrokerUnavailable as exc:
        print(f"hare: {exc}", file=sys.stderr)
        return EXIT_BROKER
    except HareError as exc:
        print(f"hare: worker failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _exit_past_stuck_threads(worker, EXIT_OK)
    return EXIT_OK


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


async def _run_worker(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
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
    await worker.run()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
