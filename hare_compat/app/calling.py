"""Sending and retrying a compat task: Celery's `apply_async` options, argument checks, and
`Task.retry`'s rules (kept here so `hare_compat.app.task` stays one readable class)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from hare.core.codec import get_serializer
from hare.core.outcome import mark_retries_exhausted
from hare.errors import NotSupportedError
from hare_compat.app.request import Context
from hare_compat.exceptions import Retry
from hare_compat.producer_options import PRODUCER_ONLY

if TYPE_CHECKING:
    from hare_compat.app.task import Task

__all__ = (
    "check_arguments",
    "eager_arguments",
    "raise_with_context",
    "retry",
    "retry_arguments",
    "send_options",
)

#: Task attributes that are defaults of `apply_async` options (Celery's exec options).
EXEC_OPTIONS = ("queue", "priority", "expires", "time_limit", "soft_time_limit")


def send_options(
    task: Task,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    producer: Any,
    shadow: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """`apply_async`'s options: the task's defaults, then the call's (Celery's order)."""
    if producer is not None or "publisher" in options:
        raise NotSupportedError("apply_async(producer=)", "hare publishes on its own connection")
    if task.soft_time_limit and task.time_limit and task.soft_time_limit > task.time_limit:
        raise ValueError("soft_time_limit must be less than or equal to time_limit")
    if task.typing:
        check_arguments(task, args or (), kwargs or {})
    shadow = shadow or task.shadow_name(args, kwargs, options)
    defaults = {name: value for name in EXEC_OPTIONS if (value := getattr(task, name)) is not None}
    merged = {**defaults, **options}
    merged.setdefault("ignore_result", task.ignore_result)
    if shadow:
        merged["shadow"] = shadow
    return merged


def dump_models(
    task: Task, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None, options: Any
) -> tuple[Sequence[Any] | None, Mapping[str, Any] | None]:
    """A `pydantic=True` task's model arguments dumped to JSON-able values, as Celery sends
    them (not for pickle, which sends models as they are)."""
    dump = getattr(task, "_dump_pydantic_arguments", None)
    if dump is None or options.get("serializer") == "pickle":
        return args, kwargs
    dumped: tuple[Sequence[Any], Mapping[str, Any]] = dump(args, kwargs)
    return dumped


def check_arguments(task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Celery's `typing`: refuse a call the function's signature cannot take."""
    fun = getattr(task, "_decorated_fun", None)
    if fun is None:
        return  # class-based tasks are not checked, as in Celery
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):
        return
    bound = (task, *args) if getattr(task, "_bound_self", False) else tuple(args)
    try:
        signature.bind(*bound, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{task.name}{signature}: {exc}") from None


def eager_arguments(
    task: Task, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Round-trip the arguments through the serializer, as Celery's eager mode does."""
    serializer = get_serializer(task.serializer or "json")
    body = serializer.loads(serializer.dumps([args or (), kwargs or {}]))
    return body[0], body[1]


def retry(
    task: Task,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    exc: BaseException | None,
    throw: bool,
    eta: datetime | None,
    countdown: float | None,
    max_retries: int | None,
    options: Mapping[str, Any],
) -> Retry:
    """`Task.retry` (see there)."""
    request = task.request
    retries = request.retries + 1
    if max_retries is not None:
        request._override_max_retries = max_retries
    max_retries = task.max_retries if max_retries is None else max_retries
    if request.called_directly:
        raise_with_context(exc or Retry("Task can be retried", None))
    # Celery's defaults (None) and its producer's options change nothing here.
    options = {k: v for k, v in options.items() if v is not None and k not in PRODUCER_ONLY}
    expires, queue = options.pop("expires", None), options.pop("queue", None)
    if options:
        raise NotSupportedError(
            f"retry({', '.join(sorted(options))}=)",
            "a retry takes expires= and queue=; its other options are the task's own",
        )
    if not eta and countdown is None:
        countdown = task.default_retry_delay
    next_args, next_kwargs = retry_arguments(task, request, args, kwargs)
    if max_retries is not None and retries > max_retries:
        # Marked: a worker dead-letters it as `retries-exhausted`, as a hare `Retry` past
        # its max_retries (the task still fails with it, as in Celery).
        if exc:
            raise_with_context(mark_retries_exhausted(exc))
        raise mark_retries_exhausted(
            task.MaxRetriesExceededError(
                f"Can't retry {task.name}[{request.id}] args:{next_args} kwargs:{next_kwargs}",
                task_args=next_args,
                task_kwargs=next_kwargs,
            )
        )
    when = countdown if countdown else (eta or countdown)  # both given: Celery's countdown wins
    ret = Retry(exc=exc, when=when, is_eager=request.is_eager)
    ret.retries, ret.max_retries = retries, max_retries
    ret.retry_expires, ret.retry_queue = expires, queue
    if args is not None or kwargs is not None:
        ret.retry_args, ret.retry_kwargs = tuple(next_args), dict(next_kwargs)
    if request.is_eager:
        if throw:
            raise ret
        return ret
    if not throw:
        raise NotSupportedError(
            "retry(throw=False) in a worker",
            "hare sends the retry when the task raises it: use `raise self.retry(...)`",
        )
    raise ret


def retry_arguments(
    task: Task, request: Context, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
) -> tuple[Sequence[Any], Mapping[str, Any]]:
    """The next attempt's arguments: Celery 5.7's rule (#6494) for `retry(args=)` or
    `retry(kwargs=)` given alone, keeping what does not conflict with the new ones."""
    if (args is not None and kwargs is None and request.kwargs) or (
        kwargs is not None and args is None and request.args
    ):
        try:
            signature = inspect.signature(task.run)
        except (TypeError, ValueError):
            signature = None
        if signature is not None and args is not None:
            positional = [
                p
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            kwargs = dict(request.kwargs)
            for param in positional[: len(args)]:
                if param.kind == param.POSITIONAL_OR_KEYWORD:
                    kwargs.pop(param.name, None)
        elif signature is not None and kwargs is not None:
            try:
                bound = signature.bind_partial(*request.args)
            except TypeError:
                pass
            else:
                kwargs = dict(kwargs)
                for name in list(kwargs):
                    kind = signature.parameters[name].kind if name in bound.arguments else None
                    if kind == inspect.Parameter.POSITIONAL_OR_KEYWORD:
                        bound.arguments[name] = kwargs.pop(name)
                args, kwargs = bound.args, {**bound.kwargs, **kwargs}
    next_args = request.args if args is None else args
    next_kwargs = request.kwargs if kwargs is None else kwargs
    return tuple(next_args or ()), dict(next_kwargs or {})


def raise_with_context(exc: BaseException) -> NoReturn:
    """Raise `exc` chained to the exception being handled (or re-raise that one)."""
    handling = sys.exc_info()[1]
    if handling is exc:
        raise exc
    raise exc from handling
