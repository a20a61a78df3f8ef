"""Load Celery's `t.*` modules in the hare worker with `celery` imports read as `hare_compat`.

Only import statements change (`from celery.exceptions import Reject` -> `from
hare_compat.exceptions import Reject`, as a migrating team changes them); line numbers stay,
so tracebacks point at Celery's file. The rewriting is `tests.compat.rewrite`'s.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

from tests.compat.rewrite import rewritten_spec

__all__ = ("install",)

_MODULES = {"celery": "hare_compat"}


class _Finder(importlib.abc.MetaPathFinder):
    """Finds `t` and its submodules under `root` (Celery's extracted sdist)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        parts = fullname.split(".")
        if parts[0] != "t":
            return None
        # (tests and conftest get pytest's assertion messages, as when pytest imports them)
        asserts = parts[-1].startswith("test_") or parts[-1] == "conftest"
        return rewritten_spec(fullname, self.root.joinpath(*parts), _MODULES, {}, asserts)


def install(root: Path) -> None:
    """Serve `t.*` from `root` (the directory holding Celery's `t/`), rewritten."""
    sys.meta_path.insert(0, _Finder(root))
