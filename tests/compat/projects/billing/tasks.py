"""Billing tasks; their results travel back to the caller over rpc://."""

# mypy: allow-untyped-decorators, disable-error-code="import-not-found"

from decimal import Decimal
from typing import Any

from auditlog import Audit
from celery import Task

from billing.celery import app

audit = Audit(__name__)


class PaymentDeclined(Exception):
    """The provider said no."""


@app.task
def invoice_total(lines: list[list[Any]]) -> str:
    """Sum quantity x unit price (prices as strings, money never as floats)."""
    return str(sum(int(qty) * Decimal(price) for qty, price in lines))


@app.task(bind=True)
def charge(self: Task, amount: int, key: str) -> dict[str, Any]:
    audit.note("charge", key=key, amount=amount, task_id=self.request.id)
    if amount > 100:
        raise PaymentDeclined(f"{amount} is over the limit")
    return {"charged": amount, "reply_to_set": bool(self.request.reply_to)}


@app.task(bind=True, max_retries=3)
def settle(self: Task, key: str) -> int:
    """Retry once after half a second, then succeed."""
    audit.note("settle", key=key, retries=self.request.retries)
    if self.request.retries == 0:
        raise self.retry(countdown=0.5)
    return int(self.request.retries)


@app.task
def double(x: int) -> int:
    return 2 * x
