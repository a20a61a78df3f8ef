"""A task's part in workflows: its signatures (`add.s(2, 2)`, `add.si()`, `signature`),
`chunks` / `map` / `starmap`, and the workflow operations hare_compat refuses.

A mixin of `hare_compat.app.task.Task`, kept apart because it is one concept: how a task
becomes a piece of a `hare_compat.canvas` workflow (imported when first used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hare.errors import NotSupportedError

if TYPE_CHECKING:
    from hare_compat.app.request import Context

__all__ = ("TaskCanvas", "canvas_object")


class TaskCanvas:
    """`signature`, `s`, `si`, `chunks`, `map`, `starmap` of a task, as Celery's."""

    if TYPE_CHECKING:
        ignore_result: bool | None

        @classmethod
        def _get_app(cls) -> Any: ...

        @property
        def request(self) -> Context: ...

    def signature(self, args: Any = None, *starargs: Any, **starkwargs: Any) -> Any:
        """A signature of this task (`hare_compat.canvas.signature`)."""
        signature = canvas_object("signature")
        starkwargs.setdefault("app", self._get_app())
        return signature(self, args, *starargs, **starkwargs)

    subtask = signature

    def signature_from_request(
        self,
        request: Context | None = None,
        args: Any = None,
        kwargs: Any = None,
        queue: str | None = None,
        **extra_options: Any,
    ) -> Any:
        """A signature that calls this task again as `request` (default: the running call)
        called it: same id, links, chord, time limits, headers and queue."""
        request = self.request if request is None else request
        args = request.args if args is None else args
        kwargs = request.kwargs if kwargs is None else kwargs
        ignore_result = request.__dict__.get("ignore_result", self.ignore_result)
        options = {
            **request.as_execution_options(),
            "ignore_result": ignore_result,
            **extra_options,
        }
        delivery_info = request.delivery_info or {}
        if delivery_info.get("priority") is not None:
            options["priority"] = delivery_info["priority"]
        if queue:
            options["queue"] = queue
        elif delivery_info.get("exchange") == "" and delivery_info.get("routing_key"):
            options["queue"] = delivery_info["routing_key"]
        else:
            options.update(delivery_info)
        return self.signature(args, kwargs, options, type=self, **extra_options)

    subtask_from_request = signature_from_request

    def s(self, *args: Any, **kwargs: Any) -> Any:
        """A signature: `add.s(2, 2)`."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Any:
        """An immutable signature (the previous task's result is not prepended)."""
        return self.signature(args, kwargs, immutable=True)

    def chunks(self, it: Any, n: int) -> Any:
        return canvas_object("chunks")(self.s(), it, n, app=self._get_app())

    def map(self, it: Any) -> Any:
        return canvas_object("xmap")(self.s(), it, app=self._get_app())

    def starmap(self, it: Any) -> Any:
        return canvas_object("xstarmap")(self.s(), it, app=self._get_app())

    def replace(self, sig: Any) -> Any:
        """Replace this task with `sig`, which inherits its id, callbacks, chain and chord
        (see `hare_compat.app.replacing`); ends the task with `Ignore` in a worker."""
        from hare_compat.app.replacing import replacement

        return self.on_replace(replacement(self, sig))

    def on_replace(self, sig: Any) -> Any:
        """Send the replacement and end this task (Celery's hook: override to stamp it)."""
        from hare_compat.app.replacing import send_replacement

        return send_replacement(self, sig)

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Add `sig` to the chord whose header this task is a part of (Celery's): the chord
        then waits for one part more, `sig`'s result. Sent now, unless `lazy`."""
        request = self.request
        if not request.chord:
            raise ValueError("Current task is not member of any chord")
        results = self._get_app().hare.results
        if results is None:
            raise NotSupportedError("Task.add_to_chord", "the app stores no results")
        sig.set(
            group_id=request.group,
            group_index=request.group_index,
            chord=request.chord,
            root_id=request.root_id,
        )
        sig.freeze()
        results.add_to_chord(request.group)
        return sig if lazy else sig.delay()


def canvas_object(name: str) -> Any:
    try:
        from hare_compat import canvas
    except ImportError as exc:
        raise NotSupportedError(f"Task.{name}", "hare_compat.canvas is not available") from exc
    found = getattr(canvas, name, None)
    if found is None:
        raise NotSupportedError(f"hare_compat.canvas.{name}", "not provided by hare_compat")
    return found
