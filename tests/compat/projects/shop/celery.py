"""The shop's Celery app, configured from Django-style settings (`CELERY_` prefixed names)."""

# mypy: disable-error-code="import-not-found,untyped-decorator"

import os

from celery import Celery

app = Celery("shop")

# Like Django's DJANGO_SETTINGS_MODULE (which Celery's Django fix-up would claim): the
# shop's test suite runs with SHOP_SETTINGS_MODULE=shop.testing_settings.
app.config_from_object(os.environ.get("SHOP_SETTINGS_MODULE", "shop.settings"), namespace="CELERY")
app.autodiscover_tasks(["shop"])

from shop import signals  # noqa: E402,F401 -- connect the receivers in every process
