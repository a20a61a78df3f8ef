"""The `hare` command: argv in, exit code out.

* `main`: the parser, `hare worker` and `hare status`;
* `dlq`: `hare dlq` (list, show, replay, purge dead letters);
* `schedules`: `hare schedules`.
"""

from hare.cli.main import main as main

__all__ = ("main",)
