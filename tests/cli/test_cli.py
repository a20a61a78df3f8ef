"""The `hare` command: loading apps, clear exits for bad paths."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hare import Hare
from hare.cli.common import EXIT_USAGE, load_app
from hare.cli.main import main
from hare.errors import ConfigurationError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "tasks.py").write_text(
        textwrap.dedent(
            """
            from hare import Hare
            app = Hare("shop", broker="memory://")
            not_an_app = 42
            """
        )
    )
    (tmp_path / "shop" / "two.py").write_text(
        "from hare import Hare\na = Hare('a', broker='memory://')\nb = Hare('b', broker='memory://')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def test_load_app_by_attribute_and_by_module(project: Path) -> None:
    app = load_app("shop.tasks:app")
    assert isinstance(app, Hare) and app.main == "shop"
    assert load_app("shop.tasks") is app


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("nope.tasks:app", "cannot import module 'nope.tasks'"),
        ("shop.tasks:missing", "shop.tasks:missing is nothing, not a hare app"),
        ("shop.tasks:not_an_app", "is int, not a hare app"),
        ("shop.two", "holds 2 hare apps"),
        (":app", "is not MODULE or MODULE:ATTR"),
    ],
)
def test_bad_app_paths_say_what_is_wrong(project: Path, path: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_app(path)
    assert words in str(caught.value)


def test_main_exits_2_with_a_message_for_a_bad_module(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "nope.tasks:app"]) == EXIT_USAGE
    assert "hare: cannot import module 'nope.tasks'" in capsys.readouterr().err


def test_the_installed_command_runs(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hare", "worker", "shop.tasks:missing"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project,
    )
    assert result.returncode == EXIT_USAGE
    assert "not a hare app" in result.stderr
    assert "Traceback" not in result.stderr


def test_dash_n_names_the_worker_and_each_process_of_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hare.cli.main import _parser
    from hare.cli.worker import _nodename

    args = _parser().parse_args(["worker", "shop:app", "-n", "w1@%h"])
    monkeypatch.delenv("HARE_PROCESS_INDEX", raising=False)
    assert _nodename(args.hostname) == f"w1@{socket.gethostname()}"
    monkeypatch.setenv("HARE_PROCESS_INDEX", "2")  # set by the supervisor for its children
    assert _nodename(args.hostname) == f"w1-2@{socket.gethostname()}"
    assert _nodename(None) is None  # hare's default, hare.<pid>@<host>
