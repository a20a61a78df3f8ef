"""Celery's canvas: `signature`, `chain`, `group`, `chord`, and `a.s() | b.s()`.

Built by Celery 5.7's rules (`|` makes a chain, a group followed by a task a chord, a
one-task group unrolls) and sent through `hare.canvas.apply`, a port of Celery's dispatch:
the messages are those a Celery client sends, so a workflow continues on hare and Celery
workers alike. Each piece has a module of its own, and this one gathers them under
Celery's path: `Signature` (`hare_compat.canvas_signature`, its options in
`canvas_options`, its app in `canvas_app`), `group`, `chord` and `chain`
(`canvas_group`, `canvas_chord`, `canvas_chain`), stamping (`canvas_stamping`), and the
results (`hare_compat.canvas_result.GroupResult` and the app's `AsyncResult`).
"""

from __future__ import annotations

from hare_compat.canvas_app import CanvasApp as CanvasApp
from hare_compat.canvas_app import set_default_app_resolver as set_default_app_resolver
from hare_compat.canvas_chain import _chain as _chain
from hare_compat.canvas_chain import chain as chain
from hare_compat.canvas_chord import _chord as _chord
from hare_compat.canvas_chord import chord as chord
from hare_compat.canvas_group import group as group
from hare_compat.canvas_result import GroupResult as GroupResult
from hare_compat.canvas_signature import Signature as Signature
from hare_compat.canvas_signature import maybe_signature as maybe_signature
from hare_compat.canvas_signature import maybe_unroll_group as maybe_unroll_group
from hare_compat.canvas_signature import signature as signature
from hare_compat.canvas_signature import subtask as subtask
from hare_compat.canvas_stamping import StampingVisitor as StampingVisitor

__all__ = (
    "CanvasApp",
    "GroupResult",
    "Signature",
    "StampingVisitor",
    "chain",
    "chord",
    "group",
    "maybe_signature",
    "set_default_app_resolver",
    "signature",
    "subtask",
)
