"""The `hare` command: argv in, exit code out.

* `main`: the parser and the dispatch; `common`: exit codes, finding and loading the app;
* `worker` (with `celery_flags`, `queues`, `pidfile`): `hare worker`;
* `status` (with `management`), `inspect`, `purge`: an operator's view of the broker and fleet;
* `delayed` (with `ladder_view`): what waits in the delay ladder;
* `dlq`: `hare dlq` (list, show, replay, purge dead letters); `progress`: their progress bar;
* `schedules`: `hare schedules`; `migrate`: `hare migrate`, Celery imports to hare_compat.
"""

from hare.cli.main import main as main

__all__ = ("main",)
