"""One delivery's fate, decided once: how its task ended and what becomes of the delivery.

`TaskCall.judge` builds the verdict where the task ran (the pool thread of a sync task, the
loop for an async one), or on the loop for a call that could not end itself (a hard time limit,
a process of its own). The same value then goes to the signals (`task_retry` or
`task_failure`), to the recorder (a RETRY or a FAILURE result) and to the settlement (ack,
retry, requeue, dead letter): the retry policy is consulted once per run.
"""

from __future__ import annotations

from typing import NamedTuple

from hare.core.outcome import Outcome
from hare.core.retry import RETRIES_EXHAUSTED, DeadLetterAs, Decision, RetryAt, RetryIn

__all__ = ("Verdict",)


class Verdict(NamedTuple):
    """How a run ended (`outcome`) and how to settle its delivery (`decision`)."""

    outcome: Outcome
    decision: Decision
    #: The run was stopped by revoke(terminate=True): recorded REVOKED, acked, not retried.
    terminated: bool = False

    @property
    def retries(self) -> bool:
        """Whether the task runs again (a retry through the delay ladder)."""
        return isinstance(self.decision, RetryIn | RetryAt)

    @property
    def retries_exhausted(self) -> bool:
        """Whether the task failed for good because its retries were used up."""
        decision = self.decision
        return isinstance(decision, DeadLetterAs) and decision.reason == RETRIES_EXHAUSTED
