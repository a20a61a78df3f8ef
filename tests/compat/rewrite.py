"""The import hook that makes the hare variant of a Celery project from the same files.

`install()` adds a finder for the packages `<project>_hare` (`shop_hare`, `billing_hare`):
each module is read from the Celery project's own file (`projects/shop/tasks.py`) and compiled
after two renames, nothing else:

* in import statements only, the top-level module `celery` becomes `hare_compat`
  (`from celery.exceptions import Retry` -> `from hare_compat.exceptions import Retry`);
* the project's own package is renamed wherever it is named, in imports and in string
  literals that name it (`"shop"`, `"shop.settings"`, `"shop.tasks.*"`), so both variants
  can be loaded side by side in one process. (So no queue may be named like a project.)

Line numbers are kept (tracebacks point at the real file), no bytecode is cached for the
rewritten variant, and the Celery variant is imported untouched by Python's own machinery.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import io
import re
import sys
import tokenize
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType, ModuleType

__all__ = (
    "LIBRARY",
    "PROJECTS",
    "PROJECTS_DIR",
    "SUFFIX",
    "install",
    "rewrite",
    "rewritten_spec",
)

PROJECTS_DIR = Path(__file__).resolve().parent / "projects"
#: The example projects (top-level packages under `projects/`).
PROJECTS = ("shop", "billing")
#: The hare variant of project `p` is the package `p + SUFFIX`.
SUFFIX = "_hare"
#: The library the hare variant imports where the Celery variant imports `celery`.
LIBRARY = "hare_compat"

_STRING_START = re.compile(r"([rRuUfF]*)('''|\"\"\"|'|\")")


def rewrite(source: str, *, modules: Mapping[str, str], strings: Mapping[str, str]) -> str:
    """`source` with top-level module names renamed in import statements (`modules`) and
    string literals naming a project renamed (`strings`: `"shop"`, `"shop.x"`, `"shop:x"`)."""
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # (row, start col, end col, text)
    for row, start, end, text in _import_edits(source, modules):
        edits.append((row, start, end, text))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING and token.start[0] == token.end[0]:
            replaced = _rename_string(token.string, strings)
            if replaced is not None:
                edits.append((token.start[0], token.start[1], token.end[1], replaced))
    for row, start, end, text in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + text + line[end:]
    return "".join(lines)


def _import_edits(source: str, modules: Mapping[str, str]) -> list[tuple[int, int, int, str]]:
    """Where the first component of an imported module's name is to be renamed."""
    edits = []
    at_statement_start = True
    state = ""  # "from": next NAME is the module; "import": a module list follows
    expect_module = False
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for index, token in enumerate(tokens):
        kind, text = token.type, token.string
        if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or text == ";":
            at_statement_start, state, expect_module = True, "", False
            continue
        if kind in (tokenize.NL, tokenize.COMMENT):
            continue
        if at_statement_start:
            at_statement_start = False
            if kind == tokenize.NAME and text in ("from", "import"):
                state, expect_module = text, True
                continue
        if not state:
            continue
        if kind == tokenize.NAME and text == "import" and state == "from":
            state = ""  # what follows are names inside the module, not modules
            continue
        if expect_module and kind == tokenize.OP and state == "from":
            expect_module = False  # a relative import: the project's own modules
        elif expect_module and kind == tokenize.NAME:
            if text in modules:
                renamed = _renamed(text, modules[text], state == "import" and _bare(tokens, index))
                edits.append((token.start[0], token.start[1], token.end[1], renamed))
            expect_module = False
        elif state == "import" and text == ",":
            expect_module = True
    return edits


def _renamed(name: str, new: str, bare: bool) -> str:
    """`import celery` -> `import hare_compat as celery`, so that `celery.x` still works."""
    return f"{new} as {name}" if bare else new


def _bare(tokens: Sequence[tokenize.TokenInfo], index: int) -> bool:
    """Whether the module name at `index` of an `import` stands alone (no `.x`, no `as`)."""
    for token in tokens[index + 1 :]:
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            return token.string not in (".", "as")
    return True


def _rename_string(literal: str, strings: Mapping[str, str]) -> str | None:
    match = _STRING_START.match(literal)
    if match is None or "b" in match.group(1).lower():
        return None
    head = match.end()
    body = literal[head:]
    quote = match.group(2)
    for old, new in strings.items():
        if body.startswith((old + ".", old + ":", old + quote)):
            return literal[:head] + new + body[len(old) :]
    return None


class _RewritingLoader(importlib.machinery.SourceFileLoader):
    """Compiles the rewritten source of the Celery project's file; caches no bytecode."""

    def __init__(
        self,
        fullname: str,
        path: str,
        modules: Mapping[str, str],
        strings: Mapping[str, str],
        asserts: bool = False,
    ) -> None:
        super().__init__(fullname, path)
        self._modules = dict(modules)
        self._strings = dict(strings)
        self._asserts = asserts

    def get_code(self, fullname: str) -> CodeType:
        source = importlib.util.decode_source(self.get_data(self.path))
        text = rewrite(source, modules=self._modules, strings=self._strings)
        if not self._asserts:
            return compile(text, self.path, "exec", dont_inherit=True)
        # pytest's own assertion rewriting, which this loader takes the place of.
        from _pytest.assertion.rewrite import rewrite_asserts

        tree = ast.parse(text, self.path)
        rewrite_asserts(tree, text.encode(), self.path, None)
        return compile(tree, self.path, "exec", dont_inherit=True)


class VariantFinder(importlib.abc.MetaPathFinder):
    """Finds `<project>_hare[.sub]` in the Celery project's files under `root`."""

    def __init__(self, root: Path = PROJECTS_DIR) -> None:
        self.root = root
        self.modules = {"celery": LIBRARY} | {p: p + SUFFIX for p in PROJECTS}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        top, _, rest = fullname.partition(".")
        if not top.endswith(SUFFIX) or top[: -len(SUFFIX)] not in PROJECTS:
            return None
        base = self.root / top[: -len(SUFFIX)]
        if rest:
            base = base.joinpath(*rest.split("."))
        strings = {p: p + SUFFIX for p in PROJECTS}
        return rewritten_spec(fullname, base, self.modules, strings)


def rewritten_spec(
    fullname: str,
    base: Path,
    modules: Mapping[str, str],
    strings: Mapping[str, str],
    asserts: bool = False,
) -> ModuleSpec | None:
    """The spec of module `fullname` from `base` (a package directory or `base.py`), its
    source rewritten with `modules` and `strings` (see `rewrite`); None if neither exists.
    With `asserts`, its `assert` statements are rewritten as pytest rewrites a test's."""
    if (base / "__init__.py").is_file():
        file, search = base / "__init__.py", [str(base)]
    elif base.with_suffix(".py").is_file():
        file, search = base.with_suffix(".py"), None
    else:
        return None
    loader = _RewritingLoader(fullname, str(file), modules, strings, asserts)
    return importlib.util.spec_from_file_location(
        fullname, file, loader=loader, submodule_search_locations=search
    )


def install() -> None:
    """Make both variants importable in this process (idempotent)."""
    if str(PROJECTS_DIR) not in sys.path:
        sys.path.append(str(PROJECTS_DIR))
    if not any(isinstance(finder, VariantFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, VariantFinder())
