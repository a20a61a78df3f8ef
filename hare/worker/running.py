"""The tasks running in one worker now, by task id: what `inspect active` lists and what
revoke(terminate=True) stops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hare.worker.call import TaskCall

__all__ = ("Running", "RunningTasks")


@dataclass(slots=True, kw_only=True)
class Running:
    """A task that has started, for `inspect active` and for revocation with terminate."""

    call: TaskCall
    #: Wall-clock time it started (Celery's `time_start`).
    started: float


class RunningTasks(dict[str, Running]):
    """The tasks running now, by task id (the processor adds and removes them)."""

    def stop(self, task_id: str, signal: str = "SIGTERM") -> bool:
        """Stop a running task (revoke with terminate=True); whether it was running here.

        An async task gets `TaskRevoked` at the `await` it waits in; a sync task gets it in its
        thread when it next runs Python code (not inside a blocking C call); a task in a
        process of its own is not stopped (it finishes, and its result is recorded).
        """
        running = self.get(task_id)
        if running is None:
            return False
        return running.call.terminate(signal)

    def terminate(self, ids: Sequence[str], signal: str) -> list[str]:
        """Stop the tasks among `ids` that run here; the ids that were stopped (the
        revocations' `terminate`)."""
        return [task_id for task_id in ids if self.stop(task_id, signal)]
