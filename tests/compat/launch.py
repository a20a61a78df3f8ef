"""Run a command with both variants of the example projects importable (see `rewrite.py`).

    python -m tests.compat.launch celery -A shop.celery:app worker ...   # Celery's CLI
    python -m tests.compat.launch hare worker shop_hare.celery:app ...   # hare's CLI
    python -m tests.compat.launch unittest shop_hare.tests              # a project's own suite

The hook is installed before the CLI imports anything, and forked pool processes inherit it.
"""

from __future__ import annotations

import sys
import unittest
from collections.abc import Sequence

from tests.compat.rewrite import install

USAGE = "usage: python -m tests.compat.launch {celery|hare|unittest} ARGS..."


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("celery", "hare", "unittest"):
        print(USAGE, file=sys.stderr)
        return 2
    install()
    command, args = argv[0], list(argv[1:])
    if command == "celery":
        from celery.bin.celery import main as celery_main

        sys.argv = ["celery", *args]
        return int(celery_main() or 0)
    if command == "hare":
        from hare.cli.main import main as hare_main

        return hare_main(args)
    program = unittest.main(module=None, argv=["unittest", "-v", *args], exit=False)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
