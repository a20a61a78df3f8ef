"""Celery's `celery.worker` package, as far as task modules import it (`control`, `state`)."""
