"""The worker: consume -> admit -> run -> settle.

* `worker`: `Worker`, the lifecycle (connect, subscribe, serve and reconnect, drain, stop);
* `parts`: what a running worker is made of, built once it has connected;
* `inflight`: each delivery in a task of the worker's own, and the drain;
* `delivery`: `Processor`, one delivery: admit it, run it, record it, settle it;
* `request`: `Request`, the context of one message; `running`: the tasks running now;
* `call`: `TaskCall`, the context and signals around one call, and its `verdict`;
* `runner` (+ `isolation`, `limits`): runs the function on the loop, in a thread or in a
  process, with soft and hard time limits;
* `recording` (+ `runs`, `followups`): results, the once-only record of a run, and what
  follows a task (callbacks, chains, chords);
* `settlement`: ack, retry through the ladder, dead-letter, requeue; `internal_errors`: what
  becomes of a delivery whose handling failed inside hare;
* `tracelog`: Celery's task log lines; `view`: what `inspect` sees of this worker;
* `health`, `supervisor` (`--processes`), `loops` (which event loop).

`Worker` is loaded on first use, so importing one of these modules (e.g. `request` for
`Request`) does not load the whole worker.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from hare.worker.worker import Worker as Worker

if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> _typing.Any:
        if name != "Worker":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = _importlib.import_module("hare.worker.worker").Worker
        globals()[name] = value
        return value


__all__ = ("Worker",)
