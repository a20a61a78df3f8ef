"""Celery's `chain`: tasks run one after the other, each given the previous one's result.

`a | b` composes by Celery 5.7's rules: a chain ending in a group followed by a task makes
a chord, a chord at the end takes what follows into its body, a one-task group unrolls.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import Any

from hare_compat.canvas_app import CanvasApp
from hare_compat.canvas_chord import _chord
from hare_compat.canvas_group import group, is_empty_group
from hare_compat.canvas_signature import Signature, app_of, maybe_signature, maybe_unroll_group
from hare_compat.canvas_stamping import stamp_parts

__all__ = ("chain",)


def _is_list(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, Mapping | str)


def _maybe_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if _is_list(value) else [value]


@Signature.register_type(name="chain")
class _chain(Signature):
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Any = None) -> Signature:
        tasks = [maybe_signature(t, app=app) for t in d["kwargs"]["tasks"] or ()]
        return cls(tasks, app=app, **d["options"])

    def __init__(self, *tasks: Any, **options: Any) -> None:
        steps = list(tasks[0]) if len(tasks) == 1 and _is_list(tasks[0]) else list(tasks)
        super().__init__("celery.chain", (), {"tasks": steps}, **options)
        self.subtask_type = "chain"

    @property
    def tasks(self) -> list[Any]:
        return self.kwargs["tasks"]  # type: ignore[no-any-return]

    @tasks.setter
    def tasks(self, value: list[Any]) -> None:
        self.kwargs["tasks"] = value

    def stamp(self, visitor: Any = None, append_stamps: bool = False, **headers: Any) -> None:
        stamp_parts(self, visitor, append_stamps, headers, "chain", self.tasks)

    def _own_app(self) -> CanvasApp | None:
        return self._app if self._app is not None else app_of(*self.tasks[:1])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs) if self.tasks else None

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) if self.tasks else "<chain: empty>"

    def clone(self, *args: Any, **kwargs: Any) -> Signature:
        sig = super().clone(*args, **kwargs)
        sig.kwargs["tasks"] = [
            maybe_signature(t, app=self._app, clone=True) for t in sig.kwargs["tasks"]
        ]
        return sig

    def apply_async(  # type: ignore[override]  # Celery's signature
        self, args: Any = None, kwargs: Any = None, **options: Any
    ) -> Any:
        """Send the first step; each step sends the next when it succeeds. The last one's
        result, its `parent` the one before."""
        return super().apply_async(args, kwargs, **options)

    def unchain_tasks(self) -> list[Any]:
        """Copies of the tasks, the chain's link on the last, its link_error on each."""
        tasks = [t.clone() for t in self.tasks]
        for callback in _maybe_list(self.options.get("link")):
            tasks[-1].link(callback)
        for errback in _maybe_list(self.options.get("link_error")):
            for task in tasks:
                task.link_error(errback)
        return tasks

    def __or__(self, other: Any) -> Any:
        if is_empty_group(other):
            return self
        if isinstance(other, group):
            other = maybe_unroll_group(other)
            if not isinstance(other, group):
                return self.__or__(other)
            tasks = self.unchain_tasks()
            if not tasks:
                return other
            if isinstance(tasks[-1], _chord):
                tasks[-1].body = tasks[-1].body | other
                return type(self)(tasks, app=self._app)
            return type(self)([*tasks, other], app=self._app)
        if isinstance(other, _chain):
            return reduce(operator.or_, other.unchain_tasks(), self)
        if isinstance(other, Signature):
            if self.tasks and isinstance(self.tasks[-1], group):
                sig: Any = self.clone()
                sig.tasks[-1] = _chord(sig.tasks[-1], other, app=self._app)
                if len(sig.tasks) > 1 and isinstance(sig.tasks[-2], _chord):
                    sig.tasks[-2].body = sig.tasks[-2].body | sig.tasks[-1]
                    sig.tasks = sig.tasks[:-1]
                return sig
            if self.tasks and isinstance(self.tasks[-1], _chord) and not isinstance(other, _chord):
                sig = self.clone()
                sig.tasks[-1].body = sig.tasks[-1].body | other
                return sig
            return type(self)([*self.unchain_tasks(), other], app=self._app)
        return NotImplemented

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run the steps here, one after the other, each given the previous one's value."""
        last, (fargs, fkwargs) = None, (args or (), kwargs or {})
        task_options = dict(self.options, **options)
        callbacks = task_options.pop("link", None)
        for index, task in enumerate(self.tasks):
            step = task.clone()
            if callbacks and index == len(self.tasks) - 1:
                for callback in _maybe_list(callbacks):
                    step.link(callback)
            result = step.apply(
                (last.get(),) if last is not None else fargs, fkwargs, **task_options
            )
            result.parent, last, (fargs, fkwargs) = last, result, ((), {})
        return last


class chain(_chain):
    """Tasks run one after the other, each given the previous one's result: `chain(a, b)`
    is `a | b`; `chain(x for x in ...)` takes an iterable."""

    def __new__(cls, *tasks: Any, **kwargs: Any) -> Any:
        if not kwargs and tasks and (len(tasks) != 1 or _is_list(tasks[0])):
            steps = tasks[0] if len(tasks) == 1 else tasks
            return reduce(operator.or_, steps, _chain())
        return super().__new__(cls)
