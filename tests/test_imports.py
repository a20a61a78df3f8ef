"""`import hare` in a process that only publishes does not load the worker side.

Each check runs in a fresh interpreter: this test process has long since imported the worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import hare
from benchmarks.import_time import WORKER_SIDE

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_publisher_never_loads_the_worker_side() -> None:
    out = run_python(
        f"""
        import json, sys

        import hare

        app = hare.Hare("x", broker="memory://")

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        after_import = [m for m in {WORKER_SIDE!r} if m in sys.modules]
        add.delay(2, 3)
        after_publish = [m for m in {WORKER_SIDE!r} if m in sys.modules]
        print(json.dumps([after_import, after_publish]))
        """
    )
    assert json.loads(out.splitlines()[-1]) == [[], []]


def test_worker_is_still_importable_from_hare() -> None:
    out = run_python(
        """
        import sys

        import hare
        from hare import Worker
        from hare.worker import Worker as Defined

        assert Worker is Defined is hare.Worker
        assert "Worker" in dir(hare)
        print("hare.worker" in sys.modules)
        """
    )
    assert out.split() == ["True"]


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    out = run_python(
        """
        import hare

        try:
            hare.Wroker
        except AttributeError as e:
            print(e)
        """
    )
    assert "has no attribute 'Wroker'" in out


def test_star_import_gives_everything_in_all() -> None:
    namespace: dict[str, object] = {}
    exec("from hare import *", namespace)
    assert set(hare.__all__) <= set(namespace)
    assert namespace["Worker"] is hare.Worker
