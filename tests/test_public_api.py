"""The public surface: `hare.__all__` names exactly what `hare` exports."""

from __future__ import annotations

import hare


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(hare) if not name.startswith("_")} - {
        # submodules imported as a side effect of the re-exports
        "app",
        "clock",
        "codec",
        "connections",
        "crontab",
        "deadletter",
        "errors",
        "execution",
        "isolation",
        "ladder",
        "message",
        "outcome",
        "periodic",
        "portal",
        "protocol",
        "publisher",
        "reconnect",
        "retry",
        "schedule",
        "settings",
        "settlement",
        "task",
        "ticks",
        "topology",
        "transport",
        "worker",
    }
    assert set(hare.__all__) - {"__version__"} == public
    assert callable(hare.cron) and callable(hare.every)  # the functions, not modules


def test_the_readme_imports_work() -> None:
    from hare import Hare, Reject, Retry, cron, every  # noqa: F401
