"""The prefork pool: sync tasks in long-lived child processes that the worker process feeds.

* `config`: which pool a worker runs, and its limits;
* `pool`: the parent side, which owns the children, hands them calls under their time limits,
  and replaces the ones that died, were killed or retired;
* `child`: the child side, which runs one call at a time in its main thread;
* `forwarding`: the transport of a child, which sends what its tasks publish to the parent.
"""
