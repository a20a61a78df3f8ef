"""What `import hare` costs a process that only publishes: time and modules.

    python -m benchmarks.import_time [--runs 30] [--tree DIR ...]

Runs `--runs` fresh interpreters (after one warm-up run, which writes the bytecode caches)
and prints min / median / max of: the wall time of `python -c 'import hare'` as a whole, the
same for `python -c pass` (the interpreter's own start-up, to subtract), and the time of the
`import hare` statement alone, measured inside the process. Then, from one more run, how many
modules `import hare` adds to `sys.modules`, how many of them are hare's, and which of the
worker side's (`hare.worker.*`, `multiprocessing`...) are
among them: none, since a publisher has no use for them.

`--tree DIR` imports hare from another checkout instead of this one (the interpreter runs
in DIR, so DIR's `hare` comes first on sys.path); repeated, the trees are measured in turn
within each run, e.g. before and after a change:

    mkdir /tmp/before && git archive HEAD~1 | tar -x -C /tmp/before
    python -m benchmarks.import_time --tree /tmp/before --tree .
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Modules a publishing process should never load (tests/test_imports.py checks none is).
WORKER_SIDE = (
    "hare.worker",
    "hare.worker.delivery",
    "hare.worker.runner",
    "hare.worker.isolation",
    "hare.worker.settlement",
    "hare.worker.call",
    "hare.control.server",
    "hare.worker.supervisor",
    "multiprocessing",
    "concurrent.futures.process",
)

_TIMED_IMPORT = "import time; t = time.perf_counter(); import hare; print(time.perf_counter() - t)"
_MODULES = f"""
import json, sys
before = set(sys.modules)
import hare
added = sorted(set(sys.modules) - before)
print(json.dumps({{
    "added": len(added),
    "hare": [m for m in added if m == "hare" or m.startswith("hare.")],
    "worker_side": [m for m in {WORKER_SIDE!r} if m in sys.modules],
}}))
"""


def _python(code: str, tree: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"python -c {code!r} failed in {tree}:\n{result.stderr}")
    return result.stdout


def _wall(code: str, tree: Path) -> float:
    started = time.perf_counter()
    _python(code, tree)
    return time.perf_counter() - started


@dataclass
class Measured:
    """Seconds per run for one tree, and what `import hare` loads there."""

    tree: Path
    bare: list[float] = field(default_factory=list)  # python -c pass
    whole: list[float] = field(default_factory=list)  # python -c 'import hare'
    statement: list[float] = field(default_factory=list)  # the statement, timed in the process
    added: int = 0  # modules `import hare` adds to sys.modules
    hare: list[str] = field(default_factory=list)  # ...of which hare's own
    worker_side: list[str] = field(default_factory=list)  # ...of which in WORKER_SIDE


def measure(trees: list[Path], runs: int) -> list[Measured]:
    """`runs` rounds; each round times every tree in turn (pass, import, the statement), so a
    burst of load on a shared machine hits all of them alike."""
    results = [Measured(tree) for tree in trees]
    for m in results:
        _python("import hare", m.tree)  # warm-up: bytecode caches written, files in page cache
    for _ in range(runs):
        for m in results:
            m.bare.append(_wall("pass", m.tree))
            m.whole.append(_wall("import hare", m.tree))
            m.statement.append(float(_python(_TIMED_IMPORT, m.tree)))
    for m in results:
        modules = json.loads(_python(_MODULES, m.tree))
        m.added, m.hare, m.worker_side = modules["added"], modules["hare"], modules["worker_side"]
    return results


def _spread(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{min(ms):.1f} / {statistics.median(ms):.1f} / {max(ms):.1f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.import_time")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a checkout to import hare from (repeat to compare; default: this one)",
    )
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    print(f"CPython {sys.version.split()[0]}, {args.runs} runs each; min / median / max")
    for m in measure(trees, args.runs):
        print(m.tree)
        print(f"  python -c pass             {_spread(m.bare)}")
        print(f"  python -c 'import hare'    {_spread(m.whole)}")
        print(f"  the import hare statement  {_spread(m.statement)}")
        print(f"  modules import hare adds   {m.added} ({len(m.hare)} of them hare's)")
        print(f"  worker side loaded         {', '.join(m.worker_side) or 'none'}")


if __name__ == "__main__":
    main()
