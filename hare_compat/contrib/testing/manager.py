"""`Manager`: waiting helpers for integration tests, as `celery.contrib.testing.manager`'s."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hare_compat import states
from hare_compat.exceptions import TimeoutError as ResultTimeout
from hare_compat.result import ResultSet

__all__ = ("Manager", "Sentinel")


class Sentinel(Exception):
    """Raised by a check that does not hold yet."""


class Manager:
    """Helpers that wait for tasks to reach a state, for integration tests."""

    def __init__(self, app: Any, block_timeout: float = 30 * 60.0, no_join: bool = False) -> None:
        self.app = app
        self.block_timeout = block_timeout
        self.no_join = no_join

    def remark(self, text: str, sep: str = "-") -> None:
        sys.stderr.write(f"{sep}{text}\n")

    def wait_for(
        self,
        fun: Callable[..., Any],
        catch: Sequence[type[BaseException]] | type[BaseException],
        desc: str = "thing",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        errback: Callable[[BaseException, float, int], Any] | None = None,
        max_retries: int | None = 10,
        interval_start: float = 0.1,
        interval_step: float = 0.5,
        interval_max: float = 5.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> Any:
        """Call `fun` until it returns instead of raising one of `catch`, sleeping between
        tries (`interval_start`, growing by `interval_step` up to `interval_max`); after
        `max_retries` tries (`None`: no limit) the last exception is raised."""
        catching = tuple(catch) if isinstance(catch, Sequence) else (catch,)
        interval = interval_start
        tries = 0
        while True:
            try:
                return fun(*args, **(kwargs or {}))
            except catching as exc:
                tries += 1
                if max_retries is not None and tries > max_retries:
                    raise
                if emit_warning:
                    self.remark(f"Still waiting for {desc}: {exc!r}", "!")
                if errback is not None:
                    errback(exc, interval, tries)
                time.sleep(interval)
                interval = min(interval + interval_step, interval_max)

    def ensure_not_for_a_while(
        self,
        fun: Callable[..., Any],
        catch: Sequence[type[BaseException]] | type[BaseException],
        desc: str = "thing",
        max_retries: int = 20,
        interval_start: float = 0.1,
        interval_step: float = 0.02,
        interval_max: float = 1.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> None:
        """Make sure `fun` keeps raising one of `catch`, for a while."""
        catching = tuple(catch) if isinstance(catch, Sequence) else (catch,)
        try:
            self.wait_for(
                fun,
                catching,
                desc=desc,
                max_retries=max_retries,
                interval_start=interval_start,
                interval_step=interval_step,
                interval_max=interval_max,
                emit_warning=emit_warning,
            )
        except catching:
            return
        raise AssertionError(f"Should not have happened: {desc}")

    def join(self, r: Any, propagate: bool = False, max_retries: int = 10, **kwargs: Any) -> Any:
        """Wait for the results of `r` (a result or a result set), retrying timeouts."""
        if self.no_join:
            return None
        results = r if isinstance(r, ResultSet) else ResultSet([r])
        for _ in range(max_retries):
            try:
                return results.get(propagate=propagate, **kwargs)
            except ResultTimeout as exc:
                self.remark(f"Still waiting for {len(results)} results: {exc!r}", "!")
        raise AssertionError("Test failed: Missing task results")

    def inspect(self, timeout: float = 3.0) -> Any:
        return self.app.control.inspect(timeout=timeout)

    def query_tasks(self, ids: Sequence[str], timeout: float = 0.5) -> Iterator[tuple[str, Any]]:
        yield from (self.inspect(timeout).query_task(*ids) or {}).items()

    def query_task_states(self, ids: Sequence[str], timeout: float = 0.5) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for _, reply in self.query_tasks(ids, timeout=timeout):
            for task_id, (state, _) in reply.items():
                found[state].add(task_id)
        return found

    def assert_accepted(self, ids: Sequence[str], interval: float = 0.5, **policy: Any) -> Any:
        policy.setdefault("desc", "waiting for tasks to be accepted")
        return self._until(self.is_accepted, ids, interval, **policy)

    def assert_received(self, ids: Sequence[str], interval: float = 0.5, **policy: Any) -> Any:
        policy.setdefault("desc", "waiting for tasks to be received")
        return self._until(self.is_received, ids, interval, **policy)

    def assert_result_tasks_in_progress_or_completed(
        self, async_results: Sequence[Any], interval: float = 0.5, **policy: Any
    ) -> Any:
        policy.setdefault("desc", "waiting for tasks to be started or completed")
        return self._until(self.is_result_task_in_progress, async_results, interval, **policy)

    @staticmethod
    def is_result_task_in_progress(results: Sequence[Any], **kwargs: Any) -> bool:
        return all(result.state in (states.STARTED, states.SUCCESS) for result in results)

    def is_received(self, ids: Sequence[str], timeout: float = 0.5) -> bool:
        return self._ids_in(("reserved", "active", "ready"), ids, timeout)

    def is_accepted(self, ids: Sequence[str], timeout: float = 0.5) -> bool:
        return self._ids_in(("active", "ready"), ids, timeout)

    def _ids_in(self, wanted: Sequence[str], ids: Sequence[str], timeout: float) -> bool:
        found = self.query_task_states(ids, timeout=timeout)
        return all(any(task_id in found[state] for state in wanted) for task_id in ids)

    def _until(self, check: Callable[..., bool], what: Any, interval: float, **policy: Any) -> Any:
        def holds() -> bool:
            if not check(what, timeout=interval):
                raise Sentinel()
            return True

        return self.wait_for(holds, (Sentinel,), **policy)

    def wait_until_idle(self) -> None:
        """Purge the app's queues, then wait until no worker runs a task."""
        control = self.app.control
        while control.purge():
            pass
        inspect = control.inspect()
        while sum(len(running) for running in (inspect.active() or {}).values()):
            time.sleep(0.1)
