"""How many examples a property test tries, by tier.

The full suite runs hypothesis's default profile: 100 examples, or a test's own count. The
unit tier (`scripts/test.sh --unit`) loads the `unit` profile (registered in conftest.py), a
quarter of that, so the tier stays fast; the full run still explores everything. A test that
sets its own count writes it as `examples(n)`: `n` in the full suite, a quarter under `unit`.
"""

from __future__ import annotations

from hypothesis import settings

#: hypothesis's default `max_examples`, the full suite's.
FULL = 100
#: The unit tier's `max_examples`.
UNIT = 25


def examples(n: int) -> int:
    """`n` examples in the full suite, scaled like the default under another profile."""
    return max(1, n * settings().max_examples // FULL)
