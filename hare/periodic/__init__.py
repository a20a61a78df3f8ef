"""Periodic tasks without beat: the broker picks the worker that runs the schedules.

* `schedules` (pure): `every`, `Interval`, `cron`, the `Schedule` protocol and `Periodic`;
* `cron` (pure): cron expressions and their next occurrence;
* `ticks` (pure): the tick queue, the slots and the messages they carry (ticks, tokens, releases);
* `election`: which worker leads (the tick queue's single active consumer, holding a token);
* `slots`: how the leader keeps one pending tick per schedule;
* `upgrade`: a v2 fleet waits while periodic v1 workers run, then deletes their queues;
* `scheduler`: `Scheduler`, a worker's part in all this (fires each occurrence once).
"""
