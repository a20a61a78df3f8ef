"""`celery.backends`: where Celery's result backend classes live. hare's result stores are
`hare.results.backends` (rpc://, redis://, memory://); `app.backend` is hare_compat's view
of them.
"""
