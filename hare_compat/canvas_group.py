"""Celery's `group`: tasks run in parallel, sharing a group id; its result a `GroupResult`.

`group | sig` makes a chord (`hare_compat.canvas_chord`, found through the registry of
`hare_compat.canvas_signature`, as the chord module is above this one).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from hare.errors import NotSupportedError
from hare_compat.canvas_app import CanvasApp
from hare_compat.canvas_signature import Signature, app_of, canvas_type, maybe_signature
from hare_compat.canvas_stamping import stamp_parts

__all__ = ("group", "is_empty_group")


def is_empty_group(sig: Any) -> bool:
    return isinstance(sig, group) and not sig.tasks


@Signature.register_type(name="group")
class group(Signature):
    """Tasks run in parallel, sharing a group id; its result is a `GroupResult`."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Any = None) -> Signature:
        tasks = [maybe_signature(t, app=app) for t in d["kwargs"]["tasks"]]
        return cls(tasks, app=app, **d["options"])

    def __init__(self, *tasks: Any, **options: Any) -> None:
        members: Any = tasks
        if len(tasks) == 1:
            members = tasks[0]
            if isinstance(members, group):
                members = members.tasks
            if isinstance(members, Signature):
                members = [members.clone()]
        members = [maybe_signature(t) if type(t) is dict else t for t in members]
        super().__init__("celery.group", (), {"tasks": members}, **options)
        self.subtask_type = "group"

    @property
    def tasks(self) -> list[Any]:
        return self.kwargs["tasks"]  # type: ignore[no-any-return]

    @tasks.setter
    def tasks(self, value: list[Any]) -> None:
        self.kwargs["tasks"] = value

    def stamp(self, visitor: Any = None, append_stamps: bool = False, **headers: Any) -> None:
        self.tasks = [maybe_signature(task, app=self._app) for task in self.tasks]
        stamp_parts(self, visitor, append_stamps, headers, "group", self.tasks)

    def _own_app(self) -> CanvasApp | None:
        return self._app if self._app is not None else app_of(*self.tasks[:1])

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"group({self.tasks!r})" if self.tasks else "group(<empty>)"

    def __call__(self, *partial_args: Any, **options: Any) -> Any:
        return self.apply_async(partial_args, **options)

    def __or__(self, other: Any) -> Any:
        if is_empty_group(other):
            return self
        return canvas_type("chord")(self, body=other, app=self._app)

    def link(self, sig: Any) -> Any:
        """Links the first task only, immutably (it cannot pass on its siblings' results)."""
        return self.tasks[0].link(sig.clone().set(immutable=True))

    def link_error(self, sig: Any) -> Any:
        """Links a copy to every task."""
        errback = maybe_signature(sig)
        return tuple(child.link_error(errback.clone()) for child in self.tasks)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Give the tasks countdowns `start`, `start + step`, ... (at most `stop`)."""
        countdown = start
        for task in self.tasks:
            task.set(countdown=countdown)
            if stop is None or countdown + step <= stop:
                countdown += step
        return self

    def apply_async(  # type: ignore[override]  # Celery's signature
        self,
        args: Any = None,
        kwargs: Any = None,
        add_to_parent: bool = True,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        **options: Any,
    ) -> Any:
        """Send every task (one group id); a `GroupResult`. As in Celery, a group takes no
        `link` (use a chord) nor `link_error` (link the tasks): both are refused."""
        options.update((k, v) for k, v in (("link", link), ("link_error", link_error)) if v)
        if producer is not None:
            raise NotSupportedError("group.apply_async(producer=)", "hare uses its own connection")
        return super().apply_async(args, kwargs, **options)

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks:
            task.set_immutable(immutable)

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        group_id = self.options.get("task_id") or str(uuid.uuid4())
        results = [task.apply(args, kwargs, **options) for task in self.tasks]
        return self.app.GroupResult(group_id, results)
