"""An example Django-style project: the Celery app lives in `shop/celery.py`."""

from .celery import app as celery_app

__all__ = ("celery_app",)
