"""Fail when the architecture erodes: module size, who imports aiormq, and the pure core.

* no module in `hare` or `hare_compat` over 500 lines;
* only the AMQP transport (`hare/transport/amqp/`) imports aiormq; pamqp
  (its wire codec) also `hare/transport/fieldtable.py`, which encodes header tables the way
  py-amqp does;
* `hare` never imports `hare_compat`;
* the pure core imports neither asyncio, aiormq nor the runtime modules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500
PURE_CORE = {
    "hare/errors.py",
    "hare/core/message.py",
    "hare/core/codec.py",
    "hare/core/protocol.py",
    "hare/core/calls.py",
    "hare/core/values.py",
    "hare/core/topology.py",
    "hare/core/settings.py",
    "hare/core/outcome.py",
    "hare/core/deadletter.py",
    "hare/core/ladder.py",
    "hare/core/retry.py",
    "hare/periodic/schedules.py",
    "hare/periodic/cron.py",
    "hare/periodic/ticks.py",
    "hare/transport/base.py",
    "hare/results/state.py",
    "hare/results/celery_format.py",
    "hare/results/backends/redis_chord.py",
    "hare/canvas/continuation.py",
    "hare/canvas/dispatch.py",
    "hare/canvas/signatures.py",
    "hare/canvas/chords.py",
    "hare/canvas/failures.py",
    "hare/canvas/parents.py",
    "hare/canvas/plan.py",
    "hare/control/pidbox.py",
    "hare/control/revocation.py",
}
#: The AMQP transport: the only modules that import aiormq.
AMQP_TRANSPORT = {"hare/transport/amqp/transport.py", "hare/transport/amqp/errors.py"}
PAMQP_ALLOWED = AMQP_TRANSPORT | {"hare/transport/fieldtable.py"}
RUNTIME = {"asyncio", "aiormq", "pamqp", "hare.app", "hare.worker", "hare.publisher", "anyio"}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the nodes under `if TYPE_CHECKING:` (imports for annotations only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                skipped.update(id(inner) for inner in ast.walk(child))
    return skipped


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_only(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def problems() -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("hare/**/*.py"), *ROOT.glob("hare_compat/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            found.append(f"{rel}: {lines} lines (over {MAX_LINES}; split it by concept)")
        names = imported(path)
        roots = {name.split(".")[0] for name in names}
        if "aiormq" in roots and rel not in AMQP_TRANSPORT:
            found.append(f"{rel}: imports aiormq (only the AMQP transport may: {AMQP_TRANSPORT})")
        if "pamqp" in roots and rel not in PAMQP_ALLOWED:
            found.append(f"{rel}: imports pamqp (only the AMQP transport may)")
        if rel.startswith("hare/") and "hare_compat" in roots:
            found.append(f"{rel}: hare must not import hare_compat")
        if rel in PURE_CORE:
            bad = {n for n in names if n in RUNTIME or n.split(".")[0] in RUNTIME}
            if bad:
                found.append(f"{rel}: pure core module imports {', '.join(sorted(bad))}")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
