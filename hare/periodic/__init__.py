"""Periodic tasks without beat: every worker offers each tick, the broker keeps one.

* `schedules` (pure): `every`, `Interval`, `cron` and the `Schedule` protocol;
* `cron` (pure): cron expressions and their next occurrence;
* `ticks` (pure): a tick's wire format and its slot queues;
* `scheduler`: `Periodic` (a registration) and `Scheduler` (offers ticks, runs them once).
"""
