"""The optional compiled build's module list (hare/compiled.py); scripts/test_compiled.sh runs
the suite on the build itself."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from hare.compiled import COMPILED, compiled_modules

ROOT = Path(__file__).resolve().parents[1]


def test_every_compiled_module_has_its_pure_python_source() -> None:
    for name in COMPILED:
        source = ROOT / (name.replace(".", "/") + ".py")
        assert source.is_file(), name
        assert importlib.util.find_spec(name) is not None


def test_this_session_runs_the_build_it_was_asked_for() -> None:
    running = compiled_modules()
    if os.environ.get("HARE_EXPECT_COMPILED") == "1":
        assert running == list(COMPILED)
    else:
        assert running == [] or running == list(COMPILED), running  # never half and half
