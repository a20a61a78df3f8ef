"""Celery's result handles (`celery.result`): `AsyncResult`, `EagerResult`, `GroupResult`.

`AsyncResult` (`hare_compat.result_handle`) is Celery's API over hare's
`hare.results.handle.AsyncResult`, which reads the app's `result_backend`. `EagerResult`
(`hare_compat.result_eager`) is what `apply()` and `task_always_eager` return: already
evaluated, nothing stored. `ResultSet` and `GroupResult` are the canvas's
(`hare_compat.canvas_result`); whether waiting is allowed here is `hare_compat.result_join`'s.
The exceptions and `states` that Celery's module imports are importable from here too.
"""

from __future__ import annotations

from hare_compat import states as states
from hare_compat.canvas_result import GroupResult as GroupResult
from hare_compat.canvas_result import ResultBase as ResultBase
from hare_compat.canvas_result import ResultSet as ResultSet
from hare_compat.exceptions import IncompleteStream as IncompleteStream
from hare_compat.exceptions import TaskRevokedError as TaskRevokedError
from hare_compat.exceptions import TimeoutError as TimeoutError
from hare_compat.result_eager import EagerResult as EagerResult
from hare_compat.result_handle import AsyncResult as AsyncResult
from hare_compat.result_handle import result_from_tuple as result_from_tuple
from hare_compat.result_join import E_WOULDBLOCK as E_WOULDBLOCK
from hare_compat.result_join import allow_join_result as allow_join_result
from hare_compat.result_join import assert_will_not_block as assert_will_not_block
from hare_compat.result_join import denied_join_result as denied_join_result

__all__ = (
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultBase",
    "ResultSet",
    "result_from_tuple",
)
