"""Tasks are typed by their function's signature: a wrong call fails mypy.

mypy runs on each case from a directory outside the repository, so it finds hare the way a
user's project does: through the installed package (`pip install -e .` must leave it visible
to type checkers, with its `py.typed`), not through the checkout on the current directory.

Both cases share an incremental cache of their own (`.mypy_cache/typing_cases`, apart from
the project's, whose options come from pyproject.toml): mypy then reads hare and the
standard library from it instead of checking them again for each case: under a second per
case instead of five. A cold cache only makes the first case slower.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = Path(__file__).parent / "typing_cases"
CACHE = Path(__file__).resolve().parent.parent / ".mypy_cache" / "typing_cases"


def run_mypy(name: str) -> tuple[str, int]:
    with tempfile.TemporaryDirectory() as elsewhere:
        shutil.copy(CASES / name, Path(elsewhere) / name)
        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", f"--cache-dir={CACHE}", name],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=300,
        )
    return done.stdout + done.stderr, done.returncode


def test_correct_calls_type_check() -> None:
    output, status = run_mypy("tasks_ok.py")
    assert status == 0, output


def test_wrong_calls_fail_type_checking() -> None:
    _fails_where_marked("tasks_bad.py")


def test_correct_events_type_check() -> None:
    output, status = run_mypy("events_ok.py")
    assert status == 0, output


def test_wrong_event_payloads_and_handlers_fail_type_checking() -> None:
    _fails_where_marked("events_bad.py")


def _fails_where_marked(name: str) -> None:
    """mypy fails `name` on exactly the lines marked `# E`."""
    output, status = run_mypy(name)
    assert status == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    source = (CASES / name).read_text().splitlines()
    expected = sorted(n for n, text in enumerate(source, start=1) if "# E" in text)
    assert lines == expected, output
