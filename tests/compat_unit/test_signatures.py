"""hare_compat's API has Celery 5.7's signatures, except where the migration guide says why.

Every public name of Celery's modules that hare_compat mirrors (and of `app.control`,
`app.control.inspect()` and `app.conf`) is compared with hare_compat's: parameter names,
order, kinds and defaults (see `conformance.py`). A difference must be a row of the guide's
"Signature differences" table, with the very words `differences()` gives and a reason; a
name hare_compat lacks must be a row of its "Not provided" table. A row that no longer
applies fails too, so the guide says what is true.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hare_compat import Celery
from tests.compat_unit import conformance
from tests.compat_unit.conformance import MISSING, Pair, differences, row, table

celery = pytest.importorskip("celery")

#: What hare_compat's modules export that Celery's do not have, and why.
HARE_ADDITIONS = {
    "celery.canvas.CanvasApp": "the protocol a signature's app satisfies (typing)",
    "celery.canvas.set_default_app_resolver": "where a signature without an app finds one",
    "celery.schedules.to_hare": "a beat_schedule entry's schedule as hare's",
    "celery.utils.log.TaskFilter": "the filter that puts task_id and task_name on records",
}


@pytest.fixture(scope="module")
def pairs() -> Iterator[list[Pair]]:
    real = celery.Celery("conformance", broker="memory://", set_as_current=False)
    ours = Celery("conformance", broker="memory://", set_as_current=False)
    try:
        yield list(conformance.walk(real, ours))
    finally:
        ours.close()
        real.close()


def test_the_walk_covers_celerys_api(pairs: list[Pair]) -> None:
    names = {pair.name for pair in pairs}
    assert len(names) == len(pairs), "a name was walked twice"
    for expected in (
        "celery.result.AsyncResult.revoke",
        "celery.result.GroupResult.get",
        "celery.app.task.Task.apply_async",
        "celery.canvas.chord.apply_async",
        "celery.app.control.Control.revoke",
        "celery.app.control.Inspect.active",
        "celery.app.utils.Settings.get",
        "celery.Celery.send_task",
        "celery.schedules.crontab",
        "celery.states.READY_STATES",
        "celery.utils.log.get_task_logger",
    ):
        assert expected in names
    assert celery.__version__.startswith("5."), celery.__version__


def test_signatures_are_celerys_or_listed_with_a_reason(pairs: list[Pair]) -> None:
    listed = table("signature-differences")
    found = {
        pair.name: difference
        for pair in pairs
        if pair.hare is not MISSING
        and pair.celery is not MISSING
        and (difference := differences(pair))
    }
    problems = []
    for name, difference in sorted(found.items()):
        entry = listed.get(name)
        if entry is None:
            problems.append(f"not listed: {row(name, difference, '<why>')}")
        elif entry.cells[0] != difference:
            problems.append(f"the difference is now: {row(name, difference, entry.cells[1])}")
        elif not entry.cells[1].strip():
            problems.append(f"no reason given: {name}")
    problems.extend(f"listed, but no longer differs: {name}" for name in listed.keys() - found)
    assert not problems, "docs/migrating-from-celery.md, Signature differences:\n" + "\n".join(
        problems
    )


def test_names_hare_compat_lacks_are_listed_with_a_reason(pairs: list[Pair]) -> None:
    listed = table("not-provided")
    lacking = {pair.name for pair in pairs if pair.hare is MISSING}
    problems = [f"not listed: {row(name, '<why>')}" for name in sorted(lacking - listed.keys())]
    problems.extend(f"listed, but provided: {name}" for name in sorted(listed.keys() - lacking))
    problems.extend(f"no reason given: {name}" for name, r in listed.items() if not r.cells[0])
    assert not problems, "docs/migrating-from-celery.md, Not provided:\n" + "\n".join(problems)


def test_what_only_hare_compat_exports_is_known(pairs: list[Pair]) -> None:
    assert {pair.name for pair in pairs if pair.celery is MISSING} == set(HARE_ADDITIONS)
