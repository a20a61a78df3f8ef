"""Celery's own integration suite, run against a `hare worker`: hare's conformance tier.

Celery's maintainers wrote `t/integration/` (`test_tasks.py`, `test_inspect.py`,
`test_canvas.py`, the tasks in `tasks.py`) to run a real client against a real worker through a
real broker and result backend. This tier runs those files unchanged, with the real Celery
client, once against Celery's own worker and once against a `hare worker` serving the same
`tasks.py` (its `celery` imports read as `hare_compat`), and writes the comparison to
`docs/celery-conformance.md`:

    .venv/bin/python -m tests.celery_suite report       # both workers, then the doc
    .venv/bin/python -m tests.celery_suite run --worker hare -- -k revoke

* `source`: Celery's `t/` from the sdist of the pinned Celery release (PyPI), checked by hash.
* `hook`: the import hook that loads `t.*` in the hare worker with `celery` -> `hare_compat`.
* `worker_app`: the hare worker's app (Celery's session-app settings, `t.integration.tasks`).
* `plugin`: the pytest plugin that swaps Celery's embedded session worker for `hare worker`.
* `report`: runs both, reads the JUnit XML, writes the doc.
"""
