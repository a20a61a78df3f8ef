"""The architecture's rules hold, and the checks that enforce them do catch a breach.

`scripts/test.sh` runs `lint-imports` (contracts in `.importlinter`) and
`scripts/check_architecture.py` on the real tree; here each is shown failing on a copy of the
packages with one rule broken, so a check that silently passes everything would be noticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(tmp_path: Path) -> Path:
    for package in ("hare", "hare_compat"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def _lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("hare/core/message.py", "import aiormq", "only the AMQP transport imports aiormq"),
        ("hare/core/ladder.py", "import hare.clock", "the pure core does no I/O"),
        ("hare/task.py", "import hare.worker.worker", "hare's floors import only downwards"),
        ("hare/publisher.py", "import hare_compat", "hare never imports hare_compat"),
        (
            "hare/control/pidbox.py",
            "import hare.control.server",
            "No cycles are allowed in hare.control.",
        ),
    ],
)
def test_a_broken_contract_fails_the_import_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_an_oversized_module_or_function_fails_the_size_check(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    shutil.copytree(ROOT / "scripts", tree / "scripts")
    long_function = "def long():\n" + "    x = 1\n" * 70
    (tree / "hare" / "core" / "bloated.py").write_text('"""Too big."""\n' + "\n" * 400)
    (tree / "hare" / "core" / "long.py").write_text('"""Too long."""\n' + long_function)
    result = subprocess.run(
        [sys.executable, "scripts/check_architecture.py"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "hare/core/bloated.py: 401 lines" in result.stderr
    assert "hare/core/long.py:2: long() is 71 lines" in result.stderr
