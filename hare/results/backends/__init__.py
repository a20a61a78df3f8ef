"""Result backends: where task results go (`result_backend`).

* `base`: the `ResultBackend` protocol every backend implements, one instance per event loop.
* `rpc` (+ `replies`): results as messages to the caller's reply queue, Celery's rpc://.
* `redis` (+ `redis_chord`): Celery's Redis backend keys, a store any process reads.
* `memory`: in-process, for tests.

`hare.results.store.Results` picks one and makes it per loop; nothing else uses them directly.
"""
