"""Fail when the architecture erodes: module size and function length.

Who may import whom (the floors, no cycles, only the AMQP transport imports aiormq and pamqp,
`hare` never imports `hare_compat`, the pure core imports no runtime) is import-linter's job:
see `.importlinter`, run by `scripts/test.sh` as `lint-imports`. This script checks the rest:

* no module in `hare` or `hare_compat` over 400 lines, except the two transports' largest
  modules (a transport is one protocol implemented in one place) and the app (`hare/app.py`,
  the facade a user sees: one short method per feature, each delegating to its package);
* no function over 60 lines (from its `def` to its last line).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
MAX_FUNCTION_LINES = 60
#: Modules allowed up to 500 lines: a transport implements the whole `Transport` protocol.
#: The app is the facade: its methods stay short and delegate (events, push tasks, ...).
TRANSPORTS = {
    "hare/transport/amqp/transport.py",
    "hare/transport/memory/broker.py",
    "hare/app.py",
}
TRANSPORT_MAX_LINES = 500


def problems() -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("hare/**/*.py"), *ROOT.glob("hare_compat/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        limit = TRANSPORT_MAX_LINES if rel in TRANSPORTS else MAX_LINES
        lines = len(text.splitlines())
        if lines > limit:
            found.append(f"{rel}: {lines} lines (over {limit}; split it by concept)")
        for node in ast.walk(ast.parse(text, rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(
                        f"{rel}:{node.lineno}: {node.name}() is {length} lines "
                        f"(over {MAX_FUNCTION_LINES}; split it by step)"
                    )
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
