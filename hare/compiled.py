"""Which of hare's modules the optional compiled build compiles, and which run compiled here.

`HARE_COMPILE=1 pip install .` (see `setup.py` and docs/benchmarks.md) compiles the modules of
a task's path through a worker with mypyc; the pure-Python modules stay the reference and the
fallback: an install without a compiler, or without `HARE_COMPILE`, runs them as they are.
Both pass the same test suite (`scripts/test_compiled.sh`).
"""

from __future__ import annotations

import importlib.util

__all__ = ("COMPILED", "compiled_modules")

#: The modules the compiled build compiles: the per-delivery path of a worker and the building
#: of a message to send. What stays interpreted stays so for a reason: a runtime-checkable
#: protocol (`hare.worker.observing`), a class extending an interpreted one or with
#: `__slots__` of its own (`hare.worker.request`, `hare.core.reprs`,
#: `hare.transport.fieldtable`), values pickled to prefork children (`hare.core.retry`,
#: `hare.core.outcome`, `hare.core.message`), and classes the test suite patches to inject
#: faults (`hare.publisher`): compiled code calls their methods directly.
COMPILED = (
    "hare.core.calls",
    "hare.core.codec",
    "hare.core.protocol",
    "hare.transport.amqp.acks",
    "hare.worker.admission",
    "hare.worker.call",
    "hare.worker.delivery",
    "hare.worker.inflight",
    "hare.worker.recording",
    "hare.worker.runs",
    "hare.worker.settlement",
    "hare.worker.tracelog",
)


def compiled_modules() -> list[str]:
    """The modules of `COMPILED` that this installation runs compiled."""
    found = []
    for name in COMPILED:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is not None and not origin.endswith(".py"):
            found.append(name)
    return found
