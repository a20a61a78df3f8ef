"""Tasks are typed by their function's signature: a wrong call fails mypy."""

from __future__ import annotations

from pathlib import Path

from mypy import api

CASES = Path(__file__).parent / "typing_cases"


def run_mypy(name: str) -> tuple[str, int]:
    stdout, stderr, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir=/dev/null", str(CASES / name)]
    )
    return stdout + stderr, status


def test_correct_calls_type_check() -> None:
    output, status = run_mypy("tasks_ok.py")
    assert status == 0, output


def test_wrong_calls_fail_type_checking() -> None:
    output, status = run_mypy("tasks_bad.py")
    assert status == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    source = (CASES / "tasks_bad.py").read_text().splitlines()
    expected = sorted(n for n, text in enumerate(source, start=1) if "# E" in text)
    assert lines == expected, output
