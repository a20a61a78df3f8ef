"""docs/grafana/hare.json: valid JSON, its Prometheus datasource a variable, and every metric
it queries one the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from hare.metrics.families import Families

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "hare.json"


def test_the_dashboard_queries_only_what_a_worker_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    registry = CollectorRegistry()
    Families.register(registry)
    families = list(registry.collect())
    exported = {f.name for f in families} | {
        f"{f.name}{suffix}" for f in families for suffix in ("_total", "_bucket", "_sum", "_count")
    }
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            queried |= set(re.findall(r"\bhare_[a-z_]+", target["expr"]))
    assert queried and queried <= exported, queried - exported
