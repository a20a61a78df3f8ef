"""`app.backend`: the app's result store, with Celery's backend methods for reading it."""

from __future__ import annotations

from typing import Any

from hare.errors import ResultsDisabled
from hare.results.state import PENDING
from hare.results.store import Results

__all__ = ("Backend",)


class Backend:
    """Celery's `app.backend` over hare's `Results` (`get_task_meta`, `get_state`...); any
    other attribute is the `Results` object's own."""

    def __init__(self, results: Results | None) -> None:
        self._results = results

    def __repr__(self) -> str:
        return f"<Backend {self._results!r}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store(), name)

    def _store(self) -> Results:
        if self._results is None:
            raise ResultsDisabled("app.backend")
        return self._results

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        """The stored result of `task_id` as Celery's backends give it (`status`, `result`,
        `traceback`, `children`, `date_done`, and the extended fields); PENDING if none."""
        found = self._store().lookup(task_id)
        if found is None:
            meta: dict[str, Any] = {"status": PENDING, "result": None, "traceback": None}
            return {"task_id": task_id, **meta, "children": [], "date_done": None}
        return {
            **found.extra,
            "task_id": task_id,
            "status": found.state,
            "result": found.value,
            "traceback": found.traceback,
            "children": list(found.children),
            "date_done": found.date_done,
        }

    def ensure_chords_allowed(self) -> None:
        """Celery's check before a chord: hare runs chords on every result store it has."""
        self._store()

    def get_state(self, task_id: str) -> str:
        state: str = self.get_task_meta(task_id)["status"]
        return state

    get_status = get_state

    def get_result(self, task_id: str) -> Any:
        return self.get_task_meta(task_id)["result"]

    def get_traceback(self, task_id: str) -> str | None:
        traceback: str | None = self.get_task_meta(task_id)["traceback"]
        return traceback
