"""Celery's `t/` tree from the sdist of the pinned Celery release, fetched once and checked.

The sdist on PyPI carries the test suite of its release. It is downloaded with pip into
`.celery-suite/` (ignored by git), its hash is checked, and `t/` is extracted beside it. The
installed Celery must be the same release, so that the client under test and the suite agree.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

__all__ = ("CELERY_VERSION", "SDIST_SHA256", "suite_root")

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".celery-suite"
#: The Celery release whose suite is run (the dev lock installs the same).
CELERY_VERSION = "5.7.0"
SDIST_SHA256 = "6a5dfcf6662287204f009a02002b9e66c83d4105e47ebabdc7079108772fc6f0"


def suite_root() -> Path:
    """The directory holding Celery's `t/` (with `t/integration/`), fetched if needed."""
    installed = metadata.version("celery")
    if installed != CELERY_VERSION:
        raise SystemExit(
            f"the suite is Celery {CELERY_VERSION}'s; Celery {installed} is installed "
            "(install the dev lock: scripts/test.sh does)"
        )
    target = CACHE / f"celery-{CELERY_VERSION}"
    if (target / "t" / "integration" / "tasks.py").exists():
        return target
    sdist = _download()
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{sdist.name}: sha256 {digest}, expected {SDIST_SHA256}")
    prefix = f"celery-{CELERY_VERSION}/t/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        archive.extractall(CACHE, members=members, filter="data")
    return target


def _download() -> Path:
    CACHE.mkdir(exist_ok=True)
    name = f"celery-{CELERY_VERSION}.tar.gz"
    sdist = CACHE / name
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + ["-d", str(CACHE), f"celery=={CELERY_VERSION}"],
            check=True,
        )
    return sdist
