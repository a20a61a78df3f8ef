"""Tests of Celery's suite that hare deliberately does not pass, each with its reason.

Keys are node ids relative to `t/integration/` (`test_tasks.py::test_tasks::test_x`). The
report shows these reasons instead of the failure message; keep the list short.
"""

from __future__ import annotations

__all__ = ("KNOWN_DIFFERENCES",)

KNOWN_DIFFERENCES: dict[str, str] = {}
