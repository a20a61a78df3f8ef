"""Celery workflows (chains, groups, chords, callbacks), pure: no I/O.

A hare worker continues the workflows a Celery client starts, so these follow Celery 5.7.

* `continuation`: what a worker sends after a task (`after_success`, `after_failure`,
  `chord_body`, `chord_failed`) as a `Plan`;
* `signatures`: operations on signature dicts (Celery's wire form of a signature);
* `dispatch`: `Planner`, a port of Celery's `apply_async` / `freeze` for workflows, whose
  tasks become messages through `hare.core.calls` (the one builder).
"""
