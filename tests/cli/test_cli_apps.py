"""Finding the app as Celery's `-A` finds it, and naming it once (positionally or with -A)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hare import Hare
from hare.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    app_path,
    load_object,
    locate_object,
)
from hare.cli.main import _parser, main

CELERY = """
from hare_compat import Celery

app = Celery("proj", broker="memory://", set_as_current=False)
app.conf.task_default_queue = "proj"
app.conf.task_routes = {"proj.tasks.mail": {"queue": "proj.mail"}}
app.autodiscover_tasks(["proj"])
"""

TASKS = """
from hare_compat import shared_task


@shared_task
def mail(to):
    return to
"""


def _project(root: Path, init: str) -> Path:
    (root / "proj").mkdir()
    (root / "proj" / "__init__.py").write_text(init)
    (root / "proj" / "celery.py").write_text(textwrap.dedent(CELERY))
    (root / "proj" / "tasks.py").write_text(textwrap.dedent(TASKS))
    (root / "shop.py").write_text(
        "from hare import Hare\napp = Hare('a', broker='memory://')\n"
        "other = Hare('b', broker='memory://')\n"
    )
    return root


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m in ("proj", "shop") or m.startswith("proj.")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


@pytest.mark.parametrize("init", ["from .celery import app as celery_app\n", ""])
@pytest.mark.parametrize("path", ["proj", "proj.celery", "proj.celery:app", "proj.celery.app"])
def test_a_celery_project_is_found_as_celery_finds_it(fresh: Path, init: str, path: str) -> None:
    _project(fresh, init)
    app = load_object(path)
    assert type(app).__name__ == "Celery"
    assert app is sys.modules["proj.celery"].app


@pytest.mark.parametrize(
    ("init", "path", "found"),
    [
        ("", "proj", "proj.celery:app"),
        ("from .celery import app as celery_app\n", "proj", "proj:celery_app"),
        ("", "proj.celery", "proj.celery:app"),
        ("", "proj.celery.app", "proj.celery:app"),
        ("", "proj.celery:app", "proj.celery:app"),
        ("", "shop", "shop:app"),
        ("", "shop:other", "shop:other"),
    ],
)
def test_the_app_s_exact_module_and_attribute_are_known(
    fresh: Path, init: str, path: str, found: str
) -> None:
    """What a prefork child started with spawn imports to find the same app."""
    _project(fresh, init)
    app, where = locate_object(path)
    assert where == found
    module, _, attr = where.partition(":")
    assert getattr(sys.modules[module], attr) is app


def test_a_module_s_app_attribute_wins_over_other_apps(fresh: Path) -> None:
    _project(fresh, "")
    app = load_object("shop")
    assert isinstance(app, Hare) and app.main == "a"


def test_celery_s_dash_a_forms_start_a_worker_on_the_celery_app(fresh: Path) -> None:
    _project(fresh, "from .celery import app as celery_app\n")
    for argv in (["-A", "proj", "worker"], ["worker", "-A", "proj"], ["worker", "proj"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "hare", *argv, "-l", "INFO"],
            cwd=fresh,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        seen = ""
        deadline = time.monotonic() + 30
        while "connected" not in seen and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen += line
        process.send_signal(signal.SIGTERM)
        seen += process.stderr.read()
        process.stderr.close()
        assert process.wait(timeout=30) == EXIT_OK, seen
        assert "connected to memory://; consuming proj, proj.mail\n" in seen, (argv, seen)


@pytest.mark.parametrize(
    ("argv", "app", "queue"),
    [
        (["dlq", "list", "-A", "shop", "emails"], "shop", "emails"),
        (["-A", "shop", "dlq", "list", "emails"], "shop", "emails"),
        (["dlq", "list", "shop", "emails"], "shop", "emails"),
        (["dlq", "list", "-A", "shop"], "shop", None),
        (["dlq", "show", "-A", "shop", "emails", "#1"], "shop", "emails"),
        (["purge", "-A", "shop", "emails"], "shop", None),
        (["inspect", "-A", "shop", "ping"], "shop", None),
    ],
)
def test_the_app_is_named_positionally_or_with_dash_a(
    argv: list[str], app: str, queue: str | None
) -> None:
    args = _parser().parse_args(argv)
    assert app_path(args, spill="queue" if "list" in argv else None) == app
    if "queue" in args and isinstance(args.queue, str | None):
        assert args.queue == queue


def test_naming_two_apps_or_none_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="the app is named twice: a and b"):
        app_path(_parser().parse_args(["-A", "a", "worker", "-A", "b"]))
    assert main(["worker"]) == EXIT_USAGE
    assert "name the app: hare worker shop.tasks:app (or -A proj" in capsys.readouterr().err
