"""Test helpers, as `celery.contrib.testing`: a test app (`app`), a hare worker run in a
thread of the test process (`worker`), the `celery.ping` task (`tasks`), and `manager`."""
