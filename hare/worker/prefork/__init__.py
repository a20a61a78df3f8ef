"""The prefork pool: sync tasks in long-lived child processes that the worker process feeds.

* `config`: which pool a worker runs, and its limits;
* `pool`: the parent side, which owns the children, hands them calls, and replaces the ones
  that died, were killed or retired;
* `process`: one child seen from the worker process: its pipe, its call under its time limits,
  its death;
* `child`: the child side, which runs one call at a time in its main thread;
* `forwarding`: the transport of a child, which sends what its tasks publish to the parent.
"""
