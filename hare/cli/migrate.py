"""`hare migrate PATH...`: point a Celery project's imports of `celery` at `hare_compat`.

Only imports of the `celery` package change: `import celery` (kept usable as `celery`),
`import celery.x as y`, `from celery import ...`, `from celery.x import ...`. Relative imports
(`from .celery import app as celery_app` in Celery's standard `proj/__init__.py`) and other
modules named celery (`from proj.celery import app`) are left alone, as is everything that is
not an import statement. The source is parsed (`ast`) to find the statements and tokenized
(`tokenize`) to change exactly the name `celery` in them, so comments, spacing and line ends
stay as they are. Prints a unified diff; writes only with `--write`.
"""

from __future__ import annotations

import argparse
import ast
import bisect
import difflib
import functools
import importlib.util
import io
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from hare.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = ("Rewrite", "add_migrate_parser", "rewrite", "run_migrate")

_DESCRIPTION = """\
Point a Celery project's imports of the `celery` package at hare_compat, and print the
change as a unified diff; nothing is written without --write.

Changed: `import celery`, `import celery.x as y`, `from celery import ...`,
`from celery.x import ...`. Left alone: relative imports such as
`from .celery import app as celery_app` in proj/__init__.py, your own modules named
celery (`from proj.celery import app`), strings and comments. A module hare_compat
does not have is reported."""

#: Directories never searched: version control, virtual environments, caches, builds.
SKIPPED = {".git", ".hg", ".tox", ".nox", ".venv", "venv", "env", "node_modules", "__pycache__"}
SKIPPED |= {"site-packages", "build", "dist", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

#: (line, first column, last column, new text): columns count characters, lines from 1.
Edit = tuple[int, int, int, str]


@dataclass
class Rewrite:
    """A module's source after the rewrite, and what the rewrite could not vouch for."""

    source: str
    changed: int = 0  # import statements rewritten
    warnings: list[str] = field(default_factory=list)


def add_migrate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "migrate",
        help="rewrite a Celery project's `celery` imports to hare_compat (shows a diff)",
        description=_DESCRIPTION,
        epilog="example:\n  hare migrate proj/          # review the diff\n"
        "  hare migrate proj/ --write  # then apply it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument("--write", action="store_true", help="change the files (default: diff)")


def run_migrate(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for given in args.paths:
        path = Path(given)
        if not path.exists():
            print(f"hare migrate: {given}: no such file or directory", file=sys.stderr)
            return EXIT_USAGE
        files += [path] if path.is_file() else _python_files(path)
    changed, failed = 0, 0
    for path in files:
        try:
            changed += _migrate(path, write=args.write)
        except (SyntaxError, UnicodeDecodeError, tokenize.TokenError) as exc:
            print(f"hare migrate: {path}: skipped, cannot parse it ({exc})", file=sys.stderr)
            failed += 1
    done = "rewrote" if args.write else "would rewrite"
    hint = "" if args.write or not changed else "; run again with --write to apply"
    print(f"hare migrate: {done} {changed} of {len(files)} files{hint}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _python_files(directory: Path) -> list[Path]:
    found = []
    for path in sorted(directory.rglob("*.py")):
        parents = path.relative_to(directory).parts[:-1]
        if any(part in SKIPPED for part in parents):
            continue
        if any(
            (directory.joinpath(*parents[:i]) / "pyvenv.cfg").exists()
            for i in range(1, len(parents) + 1)
        ):
            continue
        found.append(path)
    return found


def _migrate(path: Path, *, write: bool) -> int:
    """Print the diff of one file (and write it); 1 if it changes, else 0."""
    data = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    before = data.decode(encoding)
    after = rewrite(before, str(path))
    for warning in after.warnings:
        print(f"hare migrate: {warning}", file=sys.stderr)
    if not after.changed:
        return 0
    diff = difflib.unified_diff(
        io.StringIO(before).readlines(),
        io.StringIO(after.source).readlines(),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    for line in diff:
        sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    if write:
        path.write_bytes(after.source.encode(encoding))
    return 1


def _is_celery(module: str | None) -> bool:
    return module is not None and (module == "celery" or module.startswith("celery."))


def rewrite(source: str, filename: str = "<source>") -> Rewrite:
    """`source` with its imports of the `celery` package pointed at `hare_compat`.

    >>> rewrite("from celery import Celery\\nfrom .celery import app\\n").source
    'from hare_compat import Celery\\nfrom .celery import app\\n'
    """
    tree = ast.parse(source, filename)
    lines = io.StringIO(source).readlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    starts = [token.start for token in tokens]
    done = Rewrite(source)
    edits: list[Edit] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_celery(node.module):
            names = _names(_span(node, tokens, starts, lines))
            edits.append(_rename(names[1]))  # names[0] is `from`
            _check(f"{filename}:{node.lineno}", str(node.module), done)
        elif isinstance(node, ast.Import) and any(_is_celery(a.name) for a in node.names):
            edits += _import_edits(node, _span(node, tokens, starts, lines))
            for alias in node.names:
                if _is_celery(alias.name):
                    _check(f"{filename}:{node.lineno}", alias.name, done)
        else:
            continue
        done.changed += 1
    done.source = _apply(lines, edits)
    return done


def _span(
    node: ast.stmt,
    tokens: list[tokenize.TokenInfo],
    starts: list[tuple[int, int]],
    lines: list[str],
) -> list[tokenize.TokenInfo]:
    """The tokens of statement `node` (ast counts columns in UTF-8 bytes, tokenize in
    characters)."""
    start = (node.lineno, _column(lines, node.lineno, node.col_offset))
    end_line = node.end_lineno or node.lineno
    end = (end_line, _column(lines, end_line, node.end_col_offset or 0))
    found = []
    for token in tokens[bisect.bisect_left(starts, start) :]:
        if token.end > end:
            break
        found.append(token)
    return found


def _column(lines: list[str], line: int, byte_offset: int) -> int:
    return len(lines[line - 1].encode()[:byte_offset].decode(errors="replace"))


def _names(tokens: list[tokenize.TokenInfo]) -> list[tokenize.TokenInfo]:
    return [token for token in tokens if token.type == tokenize.NAME]


def _rename(token: tokenize.TokenInfo, text: str = "hare_compat") -> Edit:
    assert token.string == "celery", token
    return (token.start[0], token.start[1], token.end[1], text)


def _import_edits(node: ast.Import, tokens: list[tokenize.TokenInfo]) -> list[Edit]:
    """`import a, celery, celery.x as y, celery.z`: one group of tokens per alias."""
    groups: list[list[tokenize.TokenInfo]] = [[]]
    for token in tokens[1:]:  # after `import`
        if token.type == tokenize.OP and token.string == ",":
            groups.append([])
        elif token.type in (tokenize.NAME, tokenize.OP):
            groups[-1].append(token)
    edits = []
    for alias, group in zip(node.names, groups, strict=True):
        if not _is_celery(alias.name):
            continue
        if alias.asname is not None:  # import celery.x as y
            edits.append(_rename(group[0]))
        elif alias.name == "celery":  # import celery: the name `celery` stays bound
            edits.append(_rename(group[0], "hare_compat as celery"))
        else:  # import celery.x binds `celery` with `x` loaded: so does this
            last = group[-1]
            edits.append(_rename(group[0]))
            edits.append((last.end[0], last.end[1], last.end[1], ", hare_compat as celery"))
    return edits


def _apply(lines: list[str], edits: list[Edit]) -> str:
    lines = list(lines)
    for line, first, last, text in sorted(edits, reverse=True):
        lines[line - 1] = lines[line - 1][:first] + text + lines[line - 1][last:]
    return "".join(lines)


def _check(where: str, module: str, done: Rewrite) -> None:
    """Warn when hare_compat has no module of that name (found without importing it)."""
    roots = _compat_roots()
    if not roots:
        return
    parts = module.split(".")[1:]
    for root in roots:
        place = Path(root).joinpath(*parts)
        if not parts or place.with_suffix(".py").exists() or (place / "__init__.py").exists():
            return
    done.warnings.append(
        f"{where}: hare_compat has no module {'.'.join(['hare_compat', *parts])} "
        "(see docs/migrating-from-celery.md for what is not ported)"
    )


@functools.cache
def _compat_roots() -> tuple[str, ...]:
    """Where hare_compat's modules are (nothing is imported to find out); empty if absent."""
    spec = importlib.util.find_spec("hare_compat")
    return tuple(spec.submodule_search_locations or ()) if spec is not None else ()
