"""`hare_compat.utils.local`: the public path of `Proxy` (Celery's own is `celery.local`).

`Proxy` is defined in `hare_compat._proxy`, below `hare_compat._state`, whose `current_app`
and `current_task` are proxies.
"""

from __future__ import annotations

from hare_compat._proxy import Proxy as Proxy

__all__ = ("Proxy",)
