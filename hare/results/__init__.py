"""Task results, opt-in (`result_backend`): what a task returned, stored and fetched.

* `state` (pure): `TaskResult` and Celery's states;
* `celery_format` (pure): Celery's result bodies, exceptions and key names;
* `store`: `Results`, one backend per event loop, for sync and async callers;
* `handle`: `AsyncResult`, the caller's handle on one task's result;
* `backends/`: rpc://, redis:// and memory://.
"""
