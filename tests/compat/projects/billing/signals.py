"""The billing worker announces itself in the audit ledger when it is ready."""

# mypy: disable-error-code="import-not-found,untyped-decorator"

from typing import Any

from auditlog import Audit
from celery.signals import worker_ready

audit = Audit(__name__)


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    audit.note("worker_ready")
