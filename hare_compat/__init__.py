"""hare_compat: Celery's import paths over hare (see docs/migrating-from-celery.md).

Not implemented yet: importing a Celery name from here raises `NotSupportedError` until the
compatibility issue lands, rather than half-working.
"""
