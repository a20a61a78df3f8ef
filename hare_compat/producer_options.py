"""The options of Celery's producer, which a call may pass and hare has no use for.

`retry`, `retry_policy`, `declare`, `mandatory` and `immediate` steer how Celery's producer
publishes. hare always waits for the broker's confirm and reconnects until
`publish_timeout`, so `apply_async` (of a task or a signature) accepts them and drops them.
"""

from __future__ import annotations

__all__ = ("PRODUCER_ONLY",)

#: Options of Celery's producer, with nothing to do in hare (tasks, retries and workflows).
PRODUCER_ONLY = frozenset("retry retry_policy declare mandatory immediate".split())
