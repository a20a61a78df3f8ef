"""`autoretry_for`: wrap a task's `run` so listed exceptions call `self.retry` (Celery's logic).

The backoff is Celery's: `min(retry_backoff_max, factor * 2 ** retries)` with an integer
factor (`retry_backoff=True` is 1), and with `retry_jitter` a uniform integer in
`[0, countdown]`. The wrapper is a coroutine function when `run` is one.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hare.errors import Ignore as HareIgnore
from hare.errors import Reject as HareReject
from hare.errors import Retry as HareRetry
from hare_compat.exceptions import Ignore, Retry

if TYPE_CHECKING:
    from hare_compat.app.task import Task

__all__ = ("add_autoretry_behaviour", "get_exponential_backoff_interval")

#: Never retried automatically, whatever `autoretry_for` says: they steer the worker.
_PASS_THROUGH: tuple[type[BaseException], ...] = (Ignore, Retry, HareIgnore, HareRetry, HareReject)

#: Where the jitter comes from (a test may replace it with a seeded `random.Random`).
jitter_rng: random.Random = random.Random()


def get_exponential_backoff_interval(
    factor: int,
    retries: int,
    maximum: int,
    full_jitter: bool = False,
    rng: random.Random | None = None,
) -> int:
    """Seconds before the next automatic retry (Celery's `celery.utils.time` function)."""
    countdown = min(maximum, factor * (1 << min(retries, 1000)))
    if full_jitter:
        countdown = (rng if rng is not None else jitter_rng).randrange(countdown + 1)
    return max(0, countdown)


@dataclass(frozen=True, slots=True)
class _Options:
    autoretry_for: tuple[type[BaseException], ...]
    dont_autoretry_for: tuple[type[BaseException], ...]
    retry_kwargs: dict[str, Any]
    retry_backoff: float
    retry_backoff_max: int
    retry_jitter: bool


def _options(task: Task, options: dict[str, Any]) -> _Options:
    """Each option from `options`, else the task's attribute (Celery's precedence)."""

    def get(name: str, default: Any) -> Any:
        return options.get(name, getattr(task, name, default))

    return _Options(
        autoretry_for=tuple(get("autoretry_for", ())),
        dont_autoretry_for=tuple(get("dont_autoretry_for", ())),
        retry_kwargs=dict(get("retry_kwargs", {}) or {}),
        retry_backoff=float(get("retry_backoff", False)),
        retry_backoff_max=int(get("retry_backoff_max", 600)),
        retry_jitter=bool(get("retry_jitter", True)),
    )


def add_autoretry_behaviour(task: Task, **options: Any) -> None:
    """Wrap `task.run` with auto-retry, from `options` or the task's attributes."""
    opts = _options(task, options)
    if not opts.autoretry_for or hasattr(task, "_orig_run"):
        return
    orig_run = task.run
    wrap = _wrap_async if inspect.iscoroutinefunction(orig_run) else _wrap_sync
    # Celery's attribute names: `_orig_run` marks a task already wrapped.
    setattr(task, "_orig_run", orig_run)  # noqa: B010
    setattr(task, "run", wrap(task, orig_run, opts))  # noqa: B010


def _retry_for(task: Task, opts: _Options, exc: BaseException) -> BaseException:
    """Call `task.retry` for `exc` the way Celery's wrapper does (it raises)."""
    attempt = dict(opts.retry_kwargs)
    if opts.retry_backoff:
        attempt["countdown"] = get_exponential_backoff_interval(
            factor=int(max(1.0, opts.retry_backoff)),
            retries=task.request.retries,
            maximum=opts.retry_backoff_max,
            full_jitter=opts.retry_jitter,
        )
    request = task.request
    override = request.get("_override_max_retries")
    if override is not None:
        attempt["max_retries"] = override
    try:
        return task.retry(exc=exc, **attempt)
    finally:
        request.__dict__.pop("_override_max_retries", None)


def _wrap_async(task: Task, orig_run: Callable[..., Any], opts: _Options) -> Callable[..., Any]:
    @functools.wraps(orig_run)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await orig_run(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except opts.dont_autoretry_for:
            raise
        except opts.autoretry_for as exc:
            raise _retry_for(task, opts, exc) from exc  # retry() raises; here if throw=False

    return run


def _wrap_sync(task: Task, orig_run: Callable[..., Any], opts: _Options) -> Callable[..., Any]:
    @functools.wraps(orig_run)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return orig_run(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except opts.dont_autoretry_for:
            raise
        except opts.autoretry_for as exc:
            raise _retry_for(task, opts, exc) from exc  # retry() raises; here if throw=False

    return run
