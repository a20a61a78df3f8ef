"""`hare migrate`: only imports of the `celery` package change, on a Celery project's layout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hare.cli.common import EXIT_OK, EXIT_USAGE, load_object
from hare.cli.main import main
from hare.cli.migrate import rewrite

# Celery's standard layout (docs.celeryq.dev, "First steps with Django" / "Using Celery in your
# Application"), with the import forms a project uses.
INIT = """\
# This will make sure the app is always imported when Django starts.
from .celery import app as celery_app

__all__ = ("celery_app",)
"""

CELERY = """\
import os

from celery import Celery  # the app
from celery.schedules import crontab

os.environ.setdefault("PROJ_SETTINGS", "proj.settings")

app = Celery("proj", broker="memory://", set_as_current=False)
app.conf.task_default_queue = "proj"
app.conf.beat_schedule = {"tick": {"task": "proj.tasks.add", "schedule": crontab(), "args": (1, 2)}}
app.autodiscover_tasks(["proj"])
"""

TASKS = """\
import celery
import celery.states
import celery.result as results
from celery import (
    shared_task,  # a comment stays
)
from celery.utils.log import get_task_logger

from . import celery as celery_module
from proj.celery import app

logger = get_task_logger(__name__)
NAME = "from celery import Celery"  # a string is not an import


@shared_task
def add(x, y):
    assert celery.states.SUCCESS == "SUCCESS" and results.AsyncResult
    return x + y
"""


@pytest.fixture
def celery_project(tmp_path: Path) -> Path:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text(INIT)
    (tmp_path / "proj" / "celery.py").write_text(CELERY)
    (tmp_path / "proj" / "tasks.py").write_text(TASKS)
    (tmp_path / ".venv" / "lib").mkdir(parents=True)  # never searched
    (tmp_path / ".venv" / "lib" / "celery_thing.py").write_text("import celery\n")
    return tmp_path


def test_the_diff_rewrites_only_celery_package_imports(
    celery_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(celery_project)
    assert main(["migrate", "."]) == EXIT_OK
    captured = capsys.readouterr()
    removed = [
        line[1:]
        for line in captured.out.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    added = [
        line[1:]
        for line in captured.out.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert removed == [
        "from celery import Celery  # the app",
        "from celery.schedules import crontab",
        "import celery",
        "import celery.states",
        "import celery.result as results",
        "from celery import (",
        "from celery.utils.log import get_task_logger",
    ]
    assert added == [
        "from hare_compat import Celery  # the app",
        "from hare_compat.schedules import crontab",
        "import hare_compat as celery",
        "import hare_compat.states, hare_compat as celery",
        "import hare_compat.result as results",
        "from hare_compat import (",
        "from hare_compat.utils.log import get_task_logger",
    ]
    assert "--- a/proj/__init__.py" not in captured.out  # the relative import stays
    assert ".venv" not in captured.out
    assert "would rewrite 2 of 3 files; run again with --write" in captured.err
    assert (celery_project / "proj" / "celery.py").read_text() == CELERY  # nothing written


def test_write_gives_a_project_hare_worker_loads(
    celery_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hare", "migrate", "proj", "--write"],
        cwd=celery_project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "rewrote 2 of 3 files" in result.stderr
    assert (celery_project / "proj" / "__init__.py").read_text() == INIT
    tasks = (celery_project / "proj" / "tasks.py").read_text()
    assert "from . import celery as celery_module\nfrom proj.celery import app\n" in tasks
    assert 'NAME = "from celery import Celery"' in tasks
    assert "    shared_task,  # a comment stays\n" in tasks
    # The rewritten project runs on hare_compat without Celery: -A proj finds its app.
    monkeypatch.chdir(celery_project)
    monkeypatch.syspath_prepend(str(celery_project))
    monkeypatch.setitem(sys.modules, "celery", None)  # importing celery would fail
    for name in [m for m in sys.modules if m == "proj" or m.startswith("proj.")]:
        monkeypatch.delitem(sys.modules, name)
    app = load_object("proj")
    assert type(app).__module__.startswith("hare_compat")
    assert app.__hare_app__().tasks["proj.tasks.add"](2, 3) == 5  # type: ignore[attr-defined]
    again = subprocess.run(
        [sys.executable, "-m", "hare", "migrate", "proj"],
        cwd=celery_project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.stdout == "" and "would rewrite 0 of 3 files" in again.stderr


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("import celery\n", "import hare_compat as celery\n"),
        ("import celery as c\n", "import hare_compat as c\n"),
        ("import os, celery.app.task as t, json\n", "import os, hare_compat.app.task as t, json\n"),
        ("import celery.signals\n", "import hare_compat.signals, hare_compat as celery\n"),
        ("from celery import Celery as C, group\n", "from hare_compat import Celery as C, group\n"),
        ("from celery.exceptions import Retry\n", "from hare_compat.exceptions import Retry\n"),
        (
            "if True:\n    from celery import shared_task\n",
            "if True:\n    from hare_compat import shared_task\n",
        ),
        ('x = "é"; from celery import Celery\n', 'x = "é"; from hare_compat import Celery\n'),
        ("from celery \\\n    import Celery\n", "from hare_compat \\\n    import Celery\n"),
        ("import celery\r\nimport os\r\n", "import hare_compat as celery\r\nimport os\r\n"),
    ],
)
def test_each_import_form(before: str, after: str) -> None:
    done = rewrite(before)
    assert done.source == after and done.changed == 1 and done.warnings == []


@pytest.mark.parametrize(
    "source",
    [
        "from .celery import app as celery_app\n",
        "from . import celery\n",
        "from ..celery import app\n",
        "from proj.celery import app\n",
        "import proj.celery\n",
        "import celeryconfig\n",
        "from celery_utils import x\n",
        "celery = 1\nprint(celery)\n",
        "# from celery import Celery\n",
        "'''\nimport celery\n'''\n",
    ],
)
def test_what_is_not_an_import_of_the_celery_package_stays(source: str) -> None:
    done = rewrite(source)
    assert done.source == source and done.changed == 0


def test_a_module_hare_compat_lacks_is_reported() -> None:
    done = rewrite("from celery.contrib.abortable import AbortableTask\n", "t.py")
    assert done.source == "from hare_compat.contrib.abortable import AbortableTask\n"
    assert done.warnings == [
        "t.py:1: hare_compat has no module hare_compat.contrib.abortable "
        "(see docs/migrating-from-celery.md for what is not ported)"
    ]


def test_a_file_that_does_not_parse_is_skipped_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ok.py").write_text("from celery import Celery\n")
    (tmp_path / "broken.py").write_text("from celery import (\n")
    assert main(["migrate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "broken.py: skipped, cannot parse it" in err and "would rewrite 1 of 2" in err
    assert main(["migrate", str(tmp_path / "missing")]) == EXIT_USAGE


def test_the_sed_recipe_the_guide_used_to_give_breaks_the_standard_layout() -> None:
    """Why the guide no longer gives it: `s/\\bcelery\\b/hare_compat/` on import lines."""
    import re

    line = INIT.splitlines()[1]
    assert re.sub(r"\bcelery\b", "hare_compat", line) == (
        "from .hare_compat import app as celery_app"  # a module that does not exist
    )
    assert rewrite(textwrap.dedent(INIT)).source == INIT
