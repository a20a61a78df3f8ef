"""The peers' own environment, `benchmarks/.peers-venv`: Celery, Dramatiq, Taskiq (and
matplotlib for the chart, py-spy for profiles) at the versions pinned in
`requirements-peers.txt`, kept apart from hare's environment.

Created on first use with this interpreter's `venv` and `pip` (from PyPI), and re-created when
the requirements file changes (a copy of it is kept inside the venv as the stamp).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
REQUIREMENTS = HERE / "requirements-peers.txt"
STAMP = VENV / "requirements-peers.txt"
PYTHON = VENV / "bin" / "python"


def ensure() -> Path:
    """The peers' Python, creating or updating the venv first when needed."""
    wanted = REQUIREMENTS.read_text()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return PYTHON
    print(f"creating {VENV} from {REQUIREMENTS.name} (once; about a minute)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    result = subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"pip install for the peers failed:\n{result.stdout}{result.stderr}")
    STAMP.write_text(wanted)
    return PYTHON


def versions(python: Path | str, names: list[str]) -> dict[str, str]:
    """Installed versions of `names` in the environment of `python`."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    found: dict[str, str] = json.loads(result.stdout)
    return found
