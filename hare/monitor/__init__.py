"""Celery's monitoring events, sent by a hare worker so that Flower and `celery events` see it.

Not to be confused with `hare.events`, the app's own event fan-out. With
`worker_send_task_events` (`hare worker -E`) a worker publishes, on its own connection, the
events a Celery worker publishes: `worker-online`, a `worker-heartbeat` every 2 seconds and
`worker-offline` (`heartbeat`), and for each task `task-received`, `task-started`,
`task-succeeded`, `task-failed`, `task-retried`, `task-revoked` and `task-rejected`.

* `event` (pure): the events' fields, bodies, routing keys and the `celeryev` exchange, in
  Celery 5.7's format;
* `dispatcher`: a bounded queue drained by one sender task, so that sending an event never
  waits for the broker and never slows a task down.

The worker wires them in through `hare.worker.monitoring`. See docs/observability.md (Flower).
"""
