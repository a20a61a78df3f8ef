"""`GroupResult`: the results of a group's tasks, in order, as Celery's (the basics).

Built on the app's per-task result handles (anything with `id`, `get(timeout=,
propagate=)`, `ready()`, `successful()` and `failed()`, such as `AsyncResult`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from hare.canvas import GroupRef, Ref

if TYPE_CHECKING:
    from hare_compat.canvas_signature import CanvasApp

__all__ = ("GroupResult", "result_of")


class GroupResult:
    """The results of the tasks of group `id`."""

    def __init__(self, id: str, results: list[Any] | None = None, **kwargs: Any) -> None:
        if kwargs.keys() - {"app", "parent", "ready_barrier"}:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        self.id = id
        self.results = list(results or [])
        self.parent = kwargs.get("parent")

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(str(r.id) for r in self.results)}]>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    @property
    def children(self) -> list[Any]:
        return self.results

    def ready(self) -> bool:
        """Whether every task has finished (succeeded, failed or was revoked)."""
        return all(result.ready() for result in self.results)

    def successful(self) -> bool:
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        return any(result.failed() for result in self.results)

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        """How many tasks succeeded."""
        return sum(int(result.successful()) for result in self.results)

    def get(self, timeout: float | None = None, propagate: bool = True, **kwargs: Any) -> list[Any]:
        """Each task's value, in order; `timeout` (seconds) bounds the whole wait.

        With `propagate` (the default) the first failure's exception is raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(result.get(timeout=left, propagate=propagate, **kwargs))
        return values

    join = get


def result_of(app: CanvasApp, ref: Ref | None, parents: Iterable[tuple[str, Ref]] = ()) -> Any:
    """The app's result handle for what `hare.canvas.apply` reported, each handle's
    `parent` set from `parents` (`hare.canvas.Plan.parents`) as Celery links them."""
    links = dict(parents)
    made: dict[str, Any] = {}

    def handle(ref: Ref) -> Any:
        key = ref if isinstance(ref, str) else ref.id
        if key in made:
            return made[key]
        if isinstance(ref, GroupRef):
            made[key] = app.GroupResult(ref.id, [handle(r) for r in ref.results])
        else:
            made[key] = app.AsyncResult(ref)
        if key in links:
            made[key].parent = handle(links[key])
        return made[key]

    return None if ref is None else handle(ref)
