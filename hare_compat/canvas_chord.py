"""Celery's `chord`: a group (the header) and a task (the body) called with the header's
results, in order, once all have finished.

`chord | sig` extends the body. The chain class (`hare_compat.canvas_chain`, above this
module) is found through the registry of `hare_compat.canvas_signature` (`canvas_type`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hare.errors import NotSupportedError
from hare_compat.canvas_app import CanvasApp
from hare_compat.canvas_group import group
from hare_compat.canvas_signature import (
    Signature,
    app_of,
    canvas_type,
    maybe_signature,
    maybe_unroll_group,
    signature,
)
from hare_compat.canvas_stamping import stamp_headers, stamp_parts

__all__ = ("chord",)


def _maybe_group(tasks: Any, app: Any) -> list[Any]:
    if isinstance(tasks, dict):
        tasks = signature(tasks, app=app)
    chain: Any = canvas_type("chain")
    if isinstance(tasks, group | chain):
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
        return app_of(*list(header or ())[:1], self.body)

    def __call__(self, body: Any = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body else {}, **options)

    def __repr__(self) -> str:
        if self.body is None:
            return f"<chord without body: {self.tasks!r}>"
        return f"%{self.body.task}({self.tasks!r})"

    def __or__(self, other: Any) -> Any:
        sig: Any
        if not isinstance(other, group | canvas_type("chain")) and isinstance(other, Signature):
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
