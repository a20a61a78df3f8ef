"""Which result is whose parent, as a workflow is planned: Celery's `AsyncResult.parent`.

A chain step's result has the step before it as its parent, a chord body's its header group.
`hare.canvas.dispatch` records the links as it freezes a workflow, the way Celery's canvas
sets `result.parent`; a caller's result handle follows them (`Plan.parents`). Pure.
"""

from __future__ import annotations

from hare.errors import ConfigurationError
from hare.results.state import Ref

__all__ = ("Parents", "ref_id")


def ref_id(ref: Ref) -> str:
    """The id of a task's result or a group's."""
    return ref if isinstance(ref, str) else ref.id


class Parents(dict[str, Ref]):
    """Each result's parent, by the result's id."""

    def fresh(self, result_id: str) -> None:
        """A freeze makes a new result object in Celery, with no parent yet: a link left by
        an earlier freeze of the same signature (a chord header is frozen, then frozen
        again as it is applied) must not survive into the new one's parents."""
        self.pop(result_id, None)

    def root(self, ref: Ref) -> Ref:
        """The first result up `ref`'s parents that has none."""
        seen = {ref_id(ref)}
        while ref_id(ref) in self:
            ref = self[ref_id(ref)]
            if ref_id(ref) in seen:
                raise ConfigurationError(f"recursive result parents at {ref_id(ref)}")
            seen.add(ref_id(ref))
        return ref

    def link(self, child: Ref | None, parent: Ref) -> None:
        """The step after `parent` in a chain (if any) has it as its parent, unless it has
        one."""
        if child is not None:
            self.setdefault(ref_id(child), parent)

    def unlink_body(self, results: list[Ref], body_res: Ref, prev_res: Ref | None) -> Ref | None:
        """A group and the step after it became a chord: the result that had the step's as
        its parent loses it (it gets the chord's); that result, else `prev_res`."""
        node = results[-1] if results else None
        while node is not None and self.get(ref_id(node)) != body_res:
            node = self.get(ref_id(node))
        if node is None:
            return prev_res
        del self[ref_id(node)]
        return node
