"""Choosing the event loop: uvloop when installed, asyncio's on request, a clear error else."""

from __future__ import annotations

import asyncio
import sys

import pytest

from hare.errors import ConfigurationError
from hare.worker.loops import loop_factory, run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_takes_uvloop_when_installed() -> None:
    # uvloop is a dev dependency (scripts/test.sh installs it): not skipped when missing.
    name, factory = loop_factory("auto")
    assert name == "uvloop"
    assert run(_loop_module(), factory).startswith("uvloop")


def test_asyncio_is_asyncio_s_own_loop() -> None:
    name, factory = loop_factory("asyncio")
    assert (name, factory) == ("asyncio", None)
    assert run(_loop_module(), factory) == "asyncio.unix_events"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails as if not installed
    assert loop_factory("auto") == ("asyncio", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'hare-queue\[uvloop\]'"):
        loop_factory("uvloop")


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown event loop 'trio'"):
        loop_factory("trio")
