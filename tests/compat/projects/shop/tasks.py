"""The shop's tasks, written the way a Celery user writes them.

Every task notes what it did in the audit ledger (`auditlog`), keyed by a `key` argument or
its task id, so the compat tests can check what ran, how often, when and in which order.
"""

# mypy: allow-untyped-decorators, disable-error-code="import-not-found"

import asyncio
import os
import time
from typing import Any

from auditlog import Audit
from celery import Task, shared_task
from celery.exceptions import Ignore, MaxRetriesExceededError, Reject, SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from shop.celery import app

logger = get_task_logger(__name__)
audit = Audit(__name__)


class TransientError(Exception):
    """A failure worth retrying (a timeout talking to the payment provider, say)."""


class AuditedTask(Task):  # type: ignore[misc]
    """A base class recording every hook Celery calls, in the order it calls them."""

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        audit.note("hook:before_start", task_id=task_id)

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        audit.note("hook:on_success", task_id=task_id, retval=retval)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        audit.note("hook:on_failure", task_id=task_id, exc=type(exc).__name__)

    def on_retry(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        audit.note("hook:on_retry", task_id=task_id, exc=type(exc).__name__)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        audit.note("hook:after_return", task_id=task_id, status=status)


# -- plain tasks -----------------------------------------------------------------------------


@shared_task
def add(x: int, y: int) -> int:
    return x + y


@shared_task
def mul(x: int, y: int) -> int:
    return x * y


@app.task
def slow_add(x: int, y: int, delay: float = 0.0) -> int:
    time.sleep(delay)
    return x + y


@app.task(bind=True)
def step(self: Task, acc: list[int], n: int, key: str) -> list[int]:
    """A chain step: append `n`; note the ids that tie the chain together."""
    r = self.request
    audit.note("step", key=key, n=n, task_id=r.id, parent_id=r.parent_id, root_id=r.root_id)
    return [*acc, n]


@app.task(bind=True)
def collect(self: Task, results: list[int], key: str) -> int:
    """A chord body: note the header's results exactly as received."""
    audit.note("collect", key=key, results=results, task_id=self.request.id)
    return sum(results)


@app.task(bind=True)
def member(self: Task, n: int, key: str) -> int:
    audit.note("member", key=key, n=n, group=self.request.group, task_id=self.request.id)
    return n * n


@app.task
def remember(value: Any, key: str) -> None:
    """A link callback: note the parent's return value."""
    audit.note("remember", key=key, value=value)


@app.task
def on_boom(request: Any, exc: Exception, traceback: Any, key: str) -> None:
    """An errback (Celery's request, exc, traceback form): note what failed and why."""
    audit.note("errback", key=key, failed_id=request.id, exc=repr(exc))


@shared_task(bind=True)
def boom(self: Task, key: str) -> None:
    audit.note("boom", key=key, task_id=self.request.id)
    raise ValueError(f"boom {key}")


@app.task(bind=True)
def whoami(self: Task, key: str, *extra: Any, **options: Any) -> dict[str, Any]:
    """The request as the task sees it."""
    r = self.request
    audit.note("whoami", key=key, task_id=r.id)
    return {
        "id": r.id,
        "name": self.name,
        "args": list(r.args),
        "kwargs": r.kwargs,
        "retries": r.retries,
        "is_eager": r.is_eager,
        "routing_key": (r.delivery_info or {}).get("routing_key"),
        "root_id": r.root_id,
        "parent_id": r.parent_id,
        "group": r.group,
        "hostname_set": bool(r.hostname),
        "eta": r.eta,
        "expires": r.expires,
    }


# -- retries -----------------------------------------------------------------------------------


@app.task(bind=True, max_retries=3, default_retry_delay=30)
def flaky(self: Task, key: str, fail_times: int, countdown: float = 1.0) -> int:
    """Fail `fail_times` times, each retried `countdown` seconds later; then succeed."""
    audit.note("attempt", key=key, retries=self.request.retries, task_id=self.request.id)
    if self.request.retries < fail_times:
        raise self.retry(countdown=countdown)
    return int(self.request.retries)


@app.task(bind=True, max_retries=1)
def give_up(self: Task, key: str) -> str:
    audit.note("attempt", key=key, retries=self.request.retries)
    try:
        raise self.retry(countdown=0.5)
    except MaxRetriesExceededError:
        return f"gave up after {self.request.retries} retries"


@shared_task(
    bind=True,
    autoretry_for=(TransientError,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=2,
)
def backoff(self: Task, key: str) -> None:
    """Always fails with TransientError: retried after 1 s, then 2 s, then fails for good."""
    audit.note("attempt", key=key, retries=self.request.retries)
    raise TransientError(f"attempt {self.request.retries} of {key}")


# -- hooks ---------------------------------------------------------------------------------


@app.task(bind=True, base=AuditedTask, max_retries=2)
def audited(self: Task, mode: str) -> str:
    """`mode`: "ok" succeeds, "fail" raises ValueError, "retry" retries once then succeeds."""
    audit.note("body", task_id=self.request.id, retries=self.request.retries)
    if mode == "fail":
        raise ValueError("audited failure")
    if mode == "retry" and self.request.retries == 0:
        raise self.retry(countdown=0.2)
    return f"{mode} done"


# -- replacing -------------------------------------------------------------------------------


@app.task(bind=True)
def relay(self: Task, key: str, hops: int) -> str:
    """Hand the call on to a new call of itself `hops` times (`Task.replace`), then answer."""
    audit.note("relay", key=key, hops=hops, nesting=self.request.replaced_task_nesting)
    if hops:
        return self.replace(relay.s(key, hops - 1))  # type: ignore[no-any-return]
    return "arrived"


# -- time limits, states, results ------------------------------------------------------------


@app.task(bind=True, soft_time_limit=1)
def polite(self: Task, key: str) -> str:
    """Works until told to stop by the soft time limit, then cleans up."""
    started = time.monotonic()
    try:
        for _ in range(400):  # at most ~20 s
            time.sleep(0.05)
    except SoftTimeLimitExceeded:
        audit.note("soft-limit", key=key, after=time.monotonic() - started)
        return "cleaned up"
    return "never interrupted"


@app.task(bind=True)
def hold(self: Task, key: str, flag: str, timeout: float = 20.0) -> str:
    """Run until the file `flag` exists (the test creates it), at most `timeout` seconds."""
    audit.note("started", key=key, task_id=self.request.id)
    deadline = time.monotonic() + timeout
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            audit.note("timed-out", key=key)
            return "timed out"
        time.sleep(0.05)
    audit.note("finished", key=key)
    return "released"


@app.task(bind=True)
def progress(self: Task, key: str, flag: str, total: int = 3) -> str:
    """Report PROGRESS with a meta dict, then wait for the test to look at it."""
    self.update_state(state="PROGRESS", meta={"done": 1, "total": total})
    audit.note("progress", key=key)
    deadline = time.monotonic() + 20
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "all done"


@app.task(ignore_result=True)
def fire_and_forget(key: str) -> str:
    audit.note("fired", key=key)
    return "nobody reads this"


@app.task(rate_limit="2/s")
def throttled(key: str, n: int) -> int:
    audit.note("throttled", key=key, n=n)
    return n


@app.task(bind=True)
def refuse(self: Task, key: str) -> None:
    audit.note("refuse", key=key)
    raise Reject("no thanks", requeue=False)


@app.task(bind=True)
def skip(self: Task, key: str) -> None:
    """Mark a custom state and stop: Celery stores nothing more (`Ignore`)."""
    audit.note("skip", key=key)
    self.update_state(state="SKIPPED", meta={"why": "duplicate"})
    raise Ignore()


# -- routing ---------------------------------------------------------------------------------


@app.task(bind=True, queue="priority")
def urgent(self: Task, key: str) -> str | None:
    return (self.request.delivery_info or {}).get("routing_key")


@app.task(bind=True)
def nightly_report(self: Task, region: str) -> str | None:
    """Routed to the `reports` queue by `task_routes` (by name)."""
    return (self.request.delivery_info or {}).get("routing_key")


@app.task(bind=True)
def export_orders(self: Task, key: str) -> str | None:
    """Routed to the `reports` queue by `task_routes` (by glob)."""
    return (self.request.delivery_info or {}).get("routing_key")


# -- hare only -------------------------------------------------------------------------------


@app.task
async def fetch_rates(key: str) -> dict[str, Any]:
    """An `async def` task: hare runs it on the worker's loop (Celery cannot run one)."""
    await asyncio.sleep(0.01)
    audit.note("fetched", key=key)
    return {"key": key, "eur": 1.0}
