"""Settings for the shop's own test suite: tasks run inline, failures raise at the call."""

# mypy: disable-error-code="import-not-found,untyped-decorator"

from shop.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
