"""An example project with a plain Celery app and rpc:// results (no result store)."""
