"""Tests of Celery's suite that hare does not pass by design, and tests judged in-process.

Keys are node ids relative to `t/integration/` (`test_tasks.py::test_tasks::test_x`).

* `KNOWN_DIFFERENCES`: what hare does differently on purpose, and why. The report shows
  these reasons instead of the failure message.
* `IN_PROCESS`: tests that read the embedded worker's state, log records or signals in the
  test process. An out-of-process `hare worker` cannot pass them; they are judged by the run
  with hare_compat.contrib.pytest's worker in the test process (`--worker hare-inprocess`).
"""

from __future__ import annotations

__all__ = ("IN_PROCESS", "KNOWN_DIFFERENCES")

_ACKS_LATE = "by design: hare acks a message only once its task ran (Celery's task_acks_late=True)"

KNOWN_DIFFERENCES: dict[str, str] = {
    "test_inspect.py::test_Inspect::test_active": _ACKS_LATE
    + ", so a running task shows acknowledged: False",
    "test_inspect.py::test_Inspect::test_query_task": _ACKS_LATE
    + ", so a running task shows acknowledged: False",
    "test_tasks.py::test_task_replacement::test_replaced_task_nesting_level_0": "the test's "
    "own race, judged in-process: it resets its flag after delay() returns, and the worker in "
    "the test process has already received the task (its task_received receiver saw nesting "
    "0, as tests/compat/test_signals.py checks); Celery's slower prefork worker receives later",
    "test_canvas.py::test_chain::test_chord_header_id_duplicated_on_rabbitmq_msg_duplication"
    "[redis-group-ids]": "by design: the test publishes a task's message twice, identical to the "
    "byte; a hare worker that ran it acks the copy without running it again (hare/worker/runs.py), "
    "so one chord header id reaches Redis, not two. Two workers that both run it use the same id",
    "test_canvas.py::test_chord::test_reapplying_frozen_chord_dispatches_body_again": "by "
    "design: a frozen chord applied again sends messages identical to the byte (same ids, "
    "same bodies); a hare worker that ran one runs its copy no more (it cannot tell it from "
    "a copy a connection cut or a producer's re-send makes, see hare/worker/runs.py) and the body "
    "is not dispatched again. Freeze again (new ids) to run a canvas twice",
    "test_tasks.py::test_tasks::test_expired": _ACKS_LATE
    + " and prefetches only what it runs; RabbitMQ drops a message whose per-message TTL "
    "(Celery's client sets it from expires) passes while it waits in the queue. Celery's "
    "worker, acking early, had already taken it into memory",
}

#: What each in-process test reads in the test process.
IN_PROCESS: dict[str, str] = {
    "test_inspect.py::test_Inspect::test_stats": "the worker's pid is the test's",
    "test_inspect.py::test_Inspect::test_hello_stamps_received_revoked_ids_locally": (
        "celery.worker.state.revoked"
    ),
    "test_tasks.py::test_trace_log_arguments::test_task_success": "the worker's log records",
    "test_tasks.py::test_trace_log_arguments::test_task_failed": "the worker's log records",
    "test_tasks.py::test_tasks::test_send_task_without_ignore_result_uses_task_ignore_result": (
        "celery.worker.state.successful_requests"
    ),
    "test_tasks.py::test_tasks::test_send_task_without_ignore_result_stores_result": (
        "celery.worker.state.successful_requests"
    ),
    "test_tasks.py::test_task_redis_result_backend::test_retry_preserves_ignore_result_false": (
        "celery.worker.state.successful_requests"
    ),
    "test_tasks.py::test_task_redis_result_backend::test_retry_preserves_ignore_result_true": (
        "celery.worker.state.successful_requests"
    ),
    "test_tasks.py::test_tasks::test_revoked_by_headers_simple_canvas": (
        "it clears celery.worker.state.revoked_stamps between steps"
    ),
    "test_tasks.py::test_signal_bound_method_receivers::test_each_instance_receives": (
        "task_received receivers connected in the test process"
    ),
    "test_tasks.py::test_signal_bound_method_receivers::"
    "test_disconnect_leaves_other_instance_connected": (
        "task_received receivers connected in the test process"
    ),
    "test_tasks.py::test_signal_bound_method_receivers::"
    "test_other_instance_receives_after_garbage_collection": (
        "task_received receivers connected in the test process"
    ),
    "test_tasks.py::test_task_replacement::test_replaced_task_nesting_level_0": (
        "a task_received receiver in the test process (request.replaced_task_nesting)"
    ),
    "test_tasks.py::test_task_replacement::test_replaced_task_nesting_level_1": (
        "a task_received receiver in the test process (request.replaced_task_nesting)"
    ),
    "test_tasks.py::test_task_replacement::test_replaced_task_nesting_chain": (
        "a task_received receiver in the test process (request.replaced_task_nesting)"
    ),
    "test_canvas.py::test_stamping_mechanism::test_task_received_has_access_to_stamps": (
        "a task_received receiver in the test process (request.stamps)"
    ),
    "test_canvas.py::test_stamping_mechanism::test_linking_stamped_sig": (
        "a task_received receiver in the test process (the request's payload)"
    ),
    "test_canvas.py::test_stamping_mechanism::test_err_linking_stamped_sig": (
        "a task_received receiver in the test process (request.errbacks)"
    ),
}
