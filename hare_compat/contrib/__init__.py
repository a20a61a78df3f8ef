"""Extras of hare_compat, as `celery.contrib`: `hare_compat.contrib.pytest` (fixtures) and
`hare_compat.contrib.testing` (an in-process worker for tests)."""
