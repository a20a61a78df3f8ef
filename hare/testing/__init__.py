"""A test kit for code built on hare.

* `ManualClock` (`clock`): a clock that only moves when the test says so. Give it to the
  runtime and the memory transport, and timers, TTLs and retries run without real waiting.
"""

from hare.testing.clock import ManualClock as ManualClock

__all__ = ("ManualClock",)
