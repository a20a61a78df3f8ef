"""The public surface: `hare.__all__` names exactly what `hare` exports."""

from __future__ import annotations

import types

import hare


def test_all_names_every_export_and_only_exports() -> None:
    exported = {  # dir(), not vars(): `Worker` is loaded on first use (hare.__getattr__)
        name
        for name in dir(hare)
        if not name.startswith("_") and not isinstance(getattr(hare, name), types.ModuleType)
    }
    assert set(hare.__all__) - {"__version__"} == exported
    assert callable(hare.cron) and callable(hare.every)  # the functions, not modules


def test_the_readme_imports_work() -> None:
    from hare import Hare, Reject, Retry, cron, every  # noqa: F401
