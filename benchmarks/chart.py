"""`python -m benchmarks.chart RESULTS.json OUT.png`: the chart of a run (needs matplotlib,
which the peers' venv has): enqueue and drain rates, latency and delay lateness; medians over
repetitions with min–max bars.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.summary import Row, configs, per_rep, spread, systems

COLOURS = {
    "raw": "#9e9e9e",
    "hare": "#d9480f",
    "celery": "#2b8a3e",
    "celery-native": "#69db7c",
    "dramatiq": "#1c7ed6",
    "taskiq": "#7048e8",
}


def bars(axis: Any, rows: list[Row], measure: str, field: str, title: str, log: bool) -> None:
    labels, mids, lows, highs, colours = [], [], [], [], []
    for system in systems(rows, measure):
        for key, label in configs(rows, measure, system):
            found = spread(per_rep(rows, measure, system, key, field).values())
            if found is None:
                continue
            low, mid, high = found
            labels.append(f"{system}: {label}")
            mids.append(mid)
            lows.append(mid - low)
            highs.append(high - mid)
            colours.append(COLOURS.get(system, "#555555"))
    positions = list(range(len(labels)))[::-1]
    axis.barh(positions, mids, xerr=[lows, highs], color=colours, capsize=3)
    axis.set_yticks(positions)
    axis.set_yticklabels(labels, fontsize=7)
    axis.set_title(title, fontsize=10)
    if log:
        axis.set_xscale("log")
    for position, mid, high in zip(positions, mids, highs, strict=True):
        axis.annotate(
            f"{mid:,.0f}" if mid >= 100 else f"{mid:.2g}",
            (mid + high, position),
            xytext=(4, -3),
            textcoords="offset points",
            fontsize=7,
        )


def main() -> None:
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    saved = json.loads(Path(sys.argv[1]).read_text())
    rows: list[Row] = saved["rows"]
    figure, axes = plt.subplots(3, 2, figsize=(15, 14))
    bars(axes[0][0], rows, "enqueue", "value", "enqueue, msg/s (one producer)", False)
    bars(axes[0][1], rows, "drain", "value", "drain of no-op tasks, tasks/s", False)
    rate = saved["mode"]["rate"]
    bars(axes[1][0], rows, "e2e", "value", f"publish → start p50 at {rate:g}/s, ms", True)
    bars(axes[1][1], rows, "e2e", "p99_ms", f"publish → start p99 at {rate:g}/s, ms", True)
    bars(axes[2][0], rows, "delay", "p50_ms", "delay lateness p50 (1–10 s), ms", True)
    bars(axes[2][1], rows, "delay", "value", "delay lateness p99 (1–10 s), ms", True)
    figure.suptitle(
        f"hare and its peers ({saved['mode']['name']} run, {saved['mode']['reps']} repetitions; "
        "bars: median, whiskers: min–max)"
    )
    figure.tight_layout()
    figure.savefig(sys.argv[2], dpi=80)


if __name__ == "__main__":
    main()
