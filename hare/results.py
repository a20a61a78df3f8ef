"""An app's results: the backend for each event loop, and what the worker and handles call.

(Interface fixed here; helper A implements it.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hare.message import Message
from hare.result import TaskResult
from hare.settings import Settings

if TYPE_CHECKING:
    from hare.connections import Connections

__all__ = ("Results",)


class Results:
    """The result backend of one app (`result_backend`), per event loop."""

    def __init__(self, settings: Settings, connections: Connections) -> None:
        self._settings = settings
        self._connections = connections

    @property
    def reply_to(self) -> str | None:
        """The reply queue this process's task messages name (rpc only), else `None`."""
        raise NotImplementedError

    async def store(self, result: TaskResult, request: Message) -> None:
        """Worker side: record `result` for the task `request` carried."""
        raise NotImplementedError
