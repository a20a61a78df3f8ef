"""The settings table: complete, and exactly what the migration guide shows."""

from __future__ import annotations

from pathlib import Path

from hare_compat.app.defaults import DEFAULTS
from hare_compat.app.support import RULES, render_table, rule_for

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-celery.md"


def test_every_celery_setting_has_a_rule() -> None:
    assert [name for name in DEFAULTS if rule_for(name) is None] == []
    assert rule_for("no_such_setting") is None
    assert {rule.status for rule in RULES.values()} == {
        "hare",
        "compat",
        "worker",
        "notice",
        "refused",
    }


def test_the_guide_shows_the_generated_table() -> None:
    text = GUIDE.read_text()
    start = text.index("<!-- settings-table: generated")
    start = text.index("\n", start) + 1
    end = text.index("\n<!-- settings-table: end -->")
    assert text[start:end] == render_table(), (
        "docs/migrating-from-celery.md is out of date: paste "
        "hare_compat.app.support.render_table() between the settings-table markers"
    )


def test_the_guide_has_the_agreed_sections() -> None:
    headings = [line for line in GUIDE.read_text().splitlines() if line.startswith("## ")]
    assert headings == [
        "## Step by step",
        "## Settings",
        "## Tasks",
        "## Calling",
        "## Results",
        "## Signals",
        "## Revocation and inspect",
        "## Testing your project",
        "## Stamping",
        "## What behaves differently",
    ]
