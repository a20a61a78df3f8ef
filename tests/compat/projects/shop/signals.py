"""Signal receivers: the shop audits every task's life cycle, as an APM integration would."""

# mypy: disable-error-code="import-not-found,untyped-decorator"

from typing import Any

from auditlog import Audit
from celery.signals import (
    after_task_publish,
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_received,
    task_retry,
    task_revoked,
    task_success,
    worker_ready,
)

audit = Audit(__name__)


@before_task_publish.connect
def on_before_publish(
    sender: Any = None, headers: Any = None, body: Any = None, **kwargs: Any
) -> None:
    info = headers if "task" in headers else body
    audit.note("before_task_publish", task_id=info["id"], task=sender)


@after_task_publish.connect
def on_after_publish(
    sender: Any = None, headers: Any = None, body: Any = None, **kwargs: Any
) -> None:
    # Information about the task is in the headers for task protocol 2 (Celery's docs).
    info = headers if "task" in headers else body
    audit.note("after_task_publish", task_id=info["id"], task=sender)


@task_received.connect
def on_received(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    # What a monitoring integration reads from the worker's request: how deep in replacements
    # the task is, its stamps, and the options (stamps among them) of its errbacks.
    audit.note(
        "task_received",
        task_id=request.id,
        task=request.name,
        nesting=request.replaced_task_nesting,
        stamps=request.stamps,
        errbacks=[errback["options"] for errback in request.errbacks or ()],
    )


@task_prerun.connect
def on_prerun(
    sender: Any = None,
    task_id: Any = None,
    task: Any = None,
    args: Any = None,
    kwargs: Any = None,
    **extra: Any,
) -> None:
    audit.note("task_prerun", task_id=task_id, task=task.name, args=list(args or ()))


@task_success.connect
def on_success(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    audit.note("task_success", task_id=sender.request.id, result=result)


@task_failure.connect
def on_failure(
    sender: Any = None, task_id: Any = None, exception: Any = None, **kwargs: Any
) -> None:
    audit.note("task_failure", task_id=task_id, exc=type(exception).__name__)


@task_retry.connect
def on_retry(sender: Any = None, request: Any = None, reason: Any = None, **kwargs: Any) -> None:
    audit.note("task_retry", task_id=request.id, retries=request.retries)


@task_postrun.connect
def on_postrun(
    sender: Any = None, task_id: Any = None, state: Any = None, retval: Any = None, **kwargs: Any
) -> None:
    audit.note("task_postrun", task_id=task_id, state=state)


@task_revoked.connect
def on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: Any = None,
    expired: Any = None,
    **kwargs: Any,
) -> None:
    audit.note(
        "task_revoked", task_id=request.id, terminated=bool(terminated), expired=bool(expired)
    )


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    audit.note("worker_ready")
