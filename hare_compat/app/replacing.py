"""`Task.replace(sig)`: a running task hands its place (id, callbacks, chain, chord) to `sig`.

Celery's algorithm, step by step: the replacement inherits the task's callbacks and
errbacks (on a chain, its last task's), is frozen with the task's own id (so every handle to
the task follows it), keeps its group, group index, root and chord membership, counts one
more `replaced_task_nesting`, and carries on the rest of the task's chain. A group becomes a
chord into `celery.accumulate`, so that what follows gets the group's results as one list.
Then the replacement is sent and the task ends with `Ignore`: its message is acked, and it
records no result (the replacement will, under the same id).
"""

from __future__ import annotations

from typing import Any, NoReturn

from hare_compat.exceptions import Ignore, ImproperlyConfigured

__all__ = ("ACCUMULATE", "accumulate", "replacement", "send_replacement")

#: The built-in task a group replacement is chained into (Celery's `celery.accumulate`).
ACCUMULATE = "celery.accumulate"


def accumulate(*args: Any, index: int | None = None, **kwargs: Any) -> Any:
    """Celery's `celery.accumulate`: the results it gets, or the one at `index`."""
    return args[index] if index is not None else args


def replacement(task: Any, sig: Any) -> Any:
    """The signature that takes `task`'s place, as Celery's `Task.replace` builds it."""
    from hare_compat.canvas import _chain, group
    from hare_compat.canvas_signature import signature

    request = task.request
    if "chord" in sig.options:
        raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
    if isinstance(sig, _chain) and not getattr(sig, "tasks", True):
        raise ImproperlyConfigured("Cannot replace with an empty chain")
    app = task._get_app()
    if isinstance(sig, group):
        sig |= app.tasks[ACCUMULATE].s(index=0)
    if isinstance(sig, _chain) and isinstance(sig.tasks[-1], group):
        sig.tasks = list(sig.tasks)
        sig.tasks[-1] |= app.tasks[ACCUMULATE].s(index=0)
    for callback in _listed(request.callbacks):
        sig.link(callback)
    for errback in _listed(request.errbacks):
        sig.link_error(errback)
    if isinstance(sig, _chain) and "link" in sig.options:
        # Callbacks go to the chain's last task, so they run once, at its end.
        links = sig.tasks[-1].options.setdefault("link", [])
        links.extend(_listed(sig.options.pop("link")))
    sig.freeze(request.id)
    nesting = (getattr(request, "replaced_task_nesting", 0) or 0) + 1
    sig.set(
        chord=request.chord,
        group_id=request.group,
        group_index=request.group_index,
        root_id=request.root_id,
        replaced_task_nesting=nesting,
    )
    if isinstance(sig, _chain):
        for step in _listed(sig.tasks):
            step.set(replaced_task_nesting=nesting)
    for rest in reversed(_listed(request.chain)):
        step = signature(rest, app=app)
        step.set(replaced_task_nesting=nesting)
        sig |= step
    return sig


def send_replacement(task: Any, sig: Any) -> NoReturn | Any:
    """Celery's `Task.on_replace`: send `sig` (run it, in eager mode) and end the task."""
    if task.request.is_eager:
        return sig.apply().get()
    sig.delay()
    raise Ignore("Replaced by new task")


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
