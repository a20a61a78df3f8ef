"""The pure core: values, wire formats and rules. No I/O, no clock, no randomness.

Every module here imports only `hare.core`, `hare.errors` and the standard library's
value types; a clock or a random source is passed in by the caller. The runtime (sending
side, worker, transports) is built on these.

* `message` (`Message`), `envelope` (a message on the wire: `Properties`, `Envelope`,
  `Delivery`), `headers` (every `hare-*` header name), `settings` (`Settings`), `topology`
  (queues, exchanges, bindings);
* `codec` (serializers) and `protocol` (Celery's protocol v2 and v1 <-> `Message`);
* `ladder` (the delay ladder), `retry` (retry policy and `decide`), `outcome` (what a run did);
* `deadletter`: the dead-letter envelope, and reading it back.
"""
