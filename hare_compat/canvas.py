"""Celery's canvas: `signature`, `chain`, `group`, `chord`, and `a.s() | b.s()`.

Built by Celery 5.7's rules (`|` makes a chain, a group followed by a task a chord, a
one-task group unrolls) and sent through `hare.canvas.apply`, a port of Celery's dispatch:
the messages are those a Celery client sends, so a workflow continues on hare and Celery
workers alike. `Signature` itself is in `hare_compat.canvas_signature`; results are
`hare_compat.canvas_result.GroupResult` and the app's `AsyncResult`.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import Any

from hare.errors import NotSupportedError
from hare_compat.canvas_result import GroupResult
from hare_compat.canvas_signature import (
    CanvasApp,
    Signature,
    maybe_signature,
    set_default_app_resolver,
    signature,
    subtask,
)
from hare_compat.canvas_stamping import StampingVisitor, stamp_headers, stamp_parts

__all__ = (
    "CanvasApp",
    "GroupResult",
    "Signature",
    "StampingVisitor",
    "chain",
    "chord",
    "group",
    "maybe_signature",
    "set_default_app_resolver",
    "signature",
    "subtask",
)


def _is_list(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, Mapping | str)


def _maybe_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if _is_list(value) else [value]


def maybe_unroll_group(sig: Any) -> Any:
    """A group of one task is that task."""
    return sig.tasks[0] if isinstance(sig, group) and len(sig.tasks) == 1 else sig


def _is_empty_group(sig: Any) -> bool:
    return isinstance(sig, group) and not sig.tasks


def _app_of(*sigs: Any) -> CanvasApp | None:
    """The first app of its own among `sigs` (Celery: a canvas with no `app=` sends
    through its first task's app, so a group of another app's tasks goes to that app)."""
    for sig in sigs:
        app = sig._own_app() if isinstance(sig, Signature) else None
        if app is not None:
            return app
    return None


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
        return self._app if self._app is not None else _app_of(*self.tasks[:1])

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
        if _is_empty_group(other):
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
        return self._app if self._app is not None else _app_of(*self.tasks[:1])

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"group({self.tasks!r})" if self.tasks else "group(<empty>)"

    def __call__(self, *partial_args: Any, **options: Any) -> Any:
        return self.apply_async(partial_args, **options)

    def __or__(self, other: Any) -> Any:
        if _is_empty_group(other):
            return self
        return _chord(self, body=other, app=self._app)

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


def _maybe_group(tasks: Any, app: Any) -> list[Any]:
    if isinstance(tasks, dict):
        tasks = signature(tasks, app=app)
    if isinstance(tasks, group | _chain):
        return list(tasks.tasks)
    if isinstance(tasks, Signature):
        return [tasks]
    return [signature(t, app=app) for t in tasks]


@Signature.register_type(name="chord")
class _chord(Signature):
    """A group (the header) and a task (the body) called with the header's results, in
    order, once all have finished: `chord(header, body)` or `chord(header)(body)`."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Any = None) -> Signature:
        kwargs = dict(d["kwargs"])
        header, body = kwargs.pop("header", None), kwargs.pop("body", None)
        return cls(
            header,
            body,
            task=d["task"],
            args=d.get("args"),
            kwargs=kwargs,
            app=app,
            options=d.get("options"),
            subtask_type=d.get("subtask_type"),
            immutable=d.get("immutable", False),
        )

    def __init__(
        self,
        header: Any,
        body: Any = None,
        task: str = "celery.chord",
        args: Any = None,
        kwargs: Any = None,
        app: Any = None,
        **options: Any,
    ) -> None:
        contents = {
            **(kwargs or {"kwargs": {}}),
            "header": _maybe_group(header, app),
            "body": maybe_signature(body, app=app),
        }
        super().__init__(task, args or (), contents, app=app, **options)
        self.subtask_type = "chord"

    @property
    def tasks(self) -> Any:
        """The header."""
        return self.kwargs["header"]

    @tasks.setter
    def tasks(self, value: Any) -> None:
        self.kwargs["header"] = value

    @property
    def body(self) -> Any:
        return self.kwargs["body"]

    @body.setter
    def body(self, value: Any) -> None:
        self.kwargs["body"] = value

    def stamp(self, visitor: Any = None, append_stamps: bool = False, **headers: Any) -> None:
        header = self.tasks.tasks if isinstance(self.tasks, group) else self.tasks
        given = stamp_parts(self, visitor, append_stamps, headers, "chord_header", header)
        if visitor is not None and self.body is not None:
            stamps = visitor.on_chord_body(self, **given) or {}
            self.body.stamp(
                visitor, append_stamps, **stamp_headers(self, stamps, append_stamps, **given)
            )

    def _own_app(self) -> CanvasApp | None:
        if self._app is not None:
            return self._app
        header = self.tasks.tasks if isinstance(self.tasks, group) else self.tasks
        return _app_of(*list(header or ())[:1], self.body)

    def __call__(self, body: Any = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body else {}, **options)

    def __repr__(self) -> str:
        if self.body is None:
            return f"<chord without body: {self.tasks!r}>"
        return f"%{self.body.task}({self.tasks!r})"

    def __or__(self, other: Any) -> Any:
        sig: Any
        if not isinstance(other, group | _chain) and isinstance(other, Signature):
            sig = self.clone()
            sig.body = sig.body | other
            return sig
        if isinstance(other, group) and len(other.tasks) == 1:
            sig = self.clone()
            sig.body = sig.body | maybe_unroll_group(other)
            return sig
        return super().__or__(other)

    def clone(self, *args: Any, **kwargs: Any) -> Signature:
        sig = super().clone(*args, **kwargs)
        sig.kwargs["body"] = maybe_signature(sig.kwargs["body"], clone=True)
        return sig

    def link(self, callback: Any) -> Any:
        """Links the body."""
        self.body.link(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Links the body (and nested chords in the header), as Celery with its default
        `task_allow_error_cb_on_chord_header=False`."""
        errback = maybe_signature(errback)
        header = self.tasks.tasks if isinstance(self.tasks, group) else self.tasks
        conf = getattr(self.app, "conf", None)
        if getattr(conf, "task_allow_error_cb_on_chord_header", False):
            for task in header:
                task.link_error(errback.clone(immutable=True))
        for task in header:
            if isinstance(task, _chord):
                task.link_error(errback)
        self.body.link_error(errback)
        return errback

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks:
            task.set_immutable(immutable)

    def apply_async(  # type: ignore[override]  # Celery's signature
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        publisher: Any = None,
        connection: Any = None,
        router: Any = None,
        result_cls: Any = None,
        **options: Any,
    ) -> Any:
        """Send the header's tasks; the body follows once all finished. Its result."""
        for option, value in (
            ("producer", producer),
            ("publisher", publisher),
            ("connection", connection),
        ):
            if value is not None:
                raise NotSupportedError(
                    f"chord.apply_async({option}=)", "hare uses its own connection"
                )
        if router is not None:
            raise NotSupportedError(
                "chord.apply_async(router=)", "a chord's tasks follow task_routes"
            )
        if result_cls is not None:
            raise NotSupportedError(
                "chord.apply_async(result_cls=)", "the app's AsyncResult is returned"
            )
        if task_id is not None:
            options["task_id"] = task_id
        return super().apply_async(args, kwargs, **options)

    def apply(
        self,
        args: Any = None,
        kwargs: Any = None,
        propagate: bool = True,
        body: Any = None,
        **options: Any,
    ) -> Any:
        body = self.body if body is None else body
        header = self.tasks if isinstance(self.tasks, group) else group(self.tasks, app=self._app)
        return body.apply((header.apply(args, kwargs).get(propagate=propagate),))


chord = _chord
