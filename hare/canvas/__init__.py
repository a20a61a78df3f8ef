"""Celery workflows (chains, groups, chords, callbacks), pure: no I/O.

A hare worker continues the workflows a Celery client starts, so these follow Celery 5.7.

* `continuation`: what a worker sends after a task (`after_success`, `after_failure`,
  `chord_body`, `chord_failed`) as a `Plan`, and `apply` / `freeze` for a client;
* `plan`: the `Plan` value and its parts;
* `failures`: errbacks, the steps a failure cancels, and chords whose header failed;
* `signatures`: operations on signature dicts (Celery's wire form of a signature);
* `dispatch`: `Planner`, a port of Celery's `apply_async` / `freeze` for workflows, whose
  tasks become messages through `hare.core.calls` (the one builder);
* `chords`: Celery's `_chord`, its signature rewriting and its freeze and apply steps;
* `parents`: which result is whose parent (Celery's `AsyncResult.parent`).
"""
