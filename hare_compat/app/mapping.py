"""Celery setting values -> hare: what each value means for hare, or why hare cannot honour it.

`check()` enforces the table of `hare_compat.app.support` for one setting (refused values
raise `NotSupportedError` naming the setting as the user spelt it; notice-only settings log
once); `hare_settings()` turns a whole configuration into `hare.Hare(...)` arguments.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hare.core.codec import get_serializer
from hare.core.settings import mask_url
from hare.errors import ConfigurationError, NotSupportedError
from hare_compat.app.defaults import DEFAULTS
from hare_compat.app.routes import declared_queues
from hare_compat.app.support import rule_for

if TYPE_CHECKING:
    from hare_compat.app.conf import Settings

__all__ = ("broker_url", "check", "hare_settings", "queue_type", "result_backend", "seconds")

logger = logging.getLogger("hare_compat.conf")

Notice = Callable[[str, str], None]

_AMQP_SCHEMES = {"amqp": "amqp", "pyamqp": "amqp", "librabbitmq": "amqp", "amqps": "amqps"}
_SSL_KEYS = {"ca_certs": "cafile", "certfile": "certfile", "keyfile": "keyfile"}


def _label(name: str, spelled: str) -> str:
    return name if spelled == name else f"{spelled} ({name})"


def check(name: str, spelled: str, value: Any, notice: Notice) -> None:
    """Refuse a value hare cannot honour, or log the notice of a setting it does not need."""
    rule = rule_for(name)
    if rule is None:
        return
    label = _label(name, spelled)
    if rule.status == "refused" and value != DEFAULTS[name]:
        raise NotSupportedError(f"setting {label}={_shown(name, value)}", rule.does)
    if rule.status == "notice":
        notice(name, f"setting {label} has no effect in hare: {rule.does}")
    elif name == "task_acks_late" and value is False:
        notice(name, f"setting {label}=False: {rule.does}")
    value_check = _VALUE_CHECKS.get(name)
    if value_check is not None:
        value_check(label, value)


def _shown(name: str, value: Any) -> str:
    if isinstance(value, str) and "://" in value:
        return repr(mask_url(value))
    return "<hidden>" if "password" in name or "key" in name else repr(value)


def _one_of(*allowed: Any) -> Callable[[str, Any], None]:
    def value_check(label: str, value: Any) -> None:
        if value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            raise NotSupportedError(f"setting {label}={value!r}", f"hare supports {shown}")

    return value_check


def _check_serializer(label: str, value: Any) -> None:
    try:
        get_serializer(value)
    except ConfigurationError as exc:
        raise NotSupportedError(f"setting {label}={value!r}", str(exc)) from None


def _check_broker_url(label: str, value: Any) -> None:
    if value is not None:
        broker_url(value, False, label=label)


def _check_result_backend(label: str, value: Any) -> None:
    result_backend(value, label=label)


def _check_seconds(label: str, value: Any) -> None:
    seconds(label, value)


def _check_use_ssl(label: str, value: Any) -> None:
    _ssl_query(value, label)


def _check_queue_type(label: str, value: Any) -> None:
    if value not in ("classic", "quorum"):
        raise NotSupportedError(f"setting {label}={value!r}", "hare has classic and quorum queues")


_VALUE_CHECKS: Mapping[str, Callable[[str, Any], None]] = {
    "broker_url": _check_broker_url,
    "broker_transport": _one_of(None, "amqp", "pyamqp", "py-amqp", "memory"),
    "broker_failover_strategy": _one_of(None, "round-robin"),
    "broker_login_method": _one_of(None, "AMQPLAIN", "PLAIN"),
    "broker_use_ssl": _check_use_ssl,
    "result_backend": _check_result_backend,
    "result_expires": _check_seconds,
    "result_serializer": _one_of("json"),
    "task_serializer": _check_serializer,
    "task_protocol": _one_of(2),
    "task_acks_on_failure_or_timeout": _one_of(True),
    "task_acks_on_failure": _one_of(None, True),
    "task_acks_on_timeout": _one_of(None, True),
    "task_default_delivery_mode": _one_of(2, "persistent"),
    "task_default_exchange_type": _one_of("direct"),
    "task_default_queue_type": _check_queue_type,
    "task_create_missing_queue_type": _check_queue_type,
}


#: Celery's broker when none is set: no port, so that `broker_use_ssl` alone reaches 5671
#: (amqps' port), as with kombu, and 5672 otherwise.
_CELERY_DEFAULT_BROKER_URL = "amqp://guest:guest@localhost/"


def broker_url(value: Any, use_ssl: Any, *, label: str = "broker_url") -> str:
    """hare's broker URL for Celery's `broker_url` (a URL, a `;` list, or a list of URLs)."""
    urls = value.split(";") if isinstance(value, str) else value
    if not isinstance(urls, list | tuple) or not urls:
        raise ConfigurationError(f"setting {label} must be a URL, not {value!r}")
    converted = []
    for url in urls:
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(f"setting {label}: {url!r} is not a URL")
        scheme, _, rest = url.strip().partition("://")
        if scheme == "memory":
            converted.append("memory://")
            continue
        if scheme not in _AMQP_SCHEMES:
            raise NotSupportedError(
                f"setting {label}={mask_url(url)!r}",
                f"hare runs on RabbitMQ only (amqp://, amqps://), not {scheme}://",
            )
        query = _ssl_query(use_ssl, "broker_use_ssl")
        secure = query is not None or _AMQP_SCHEMES[scheme] == "amqps"
        url = ("amqps" if secure else "amqp") + "://" + rest
        if query:
            parts = urlsplit(url)
            merged = dict(parse_qsl(parts.query)) | query
            url = urlunsplit(parts._replace(query=urlencode(merged)))
        converted.append(url)
    return ";".join(converted)


def _ssl_query(use_ssl: Any, label: str) -> dict[str, str] | None:
    """aiormq's URL options for Celery's `broker_use_ssl` (`None`: no TLS asked for)."""
    if use_ssl is None or use_ssl is False:
        return None
    if use_ssl is True:
        return {}
    if not isinstance(use_ssl, Mapping):
        raise ConfigurationError(f"setting {label} must be True or a dict, not {use_ssl!r}")
    query: dict[str, str] = {}
    for key, option in use_ssl.items():
        if key in _SSL_KEYS:
            query[_SSL_KEYS[key]] = str(option)
        elif key == "cert_reqs" and option in (ssl.CERT_REQUIRED, None):
            continue
        elif key == "cert_reqs" and option == ssl.CERT_NONE:
            query["no_verify_ssl"] = "1"
        else:
            raise NotSupportedError(
                f"setting {label} key {key!r}",
                "hare passes ca_certs, certfile, keyfile and cert_reqs (CERT_REQUIRED or "
                "CERT_NONE) to aiormq",
            )
    return query


def result_backend(value: Any, *, label: str = "result_backend") -> str | None:
    """hare's `result_backend` for Celery's: rpc, redis, or the in-process store; else refused."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NotSupportedError(f"setting {label}={value!r}", "give a URL: rpc:// or redis://")
    if value in ("rpc", "rpc://"):
        return "rpc://"
    if value in ("cache+memory://", "memory://"):
        return "memory://"
    if value.startswith(("redis://", "rediss://")):
        return value
    raise NotSupportedError(
        f"setting {label}={mask_url(value)!r}",
        "hare stores results with rpc:// or redis:// (and cache+memory:// in tests)",
    )


def seconds(label: str, value: Any) -> float:
    """A duration setting in seconds (Celery takes seconds or a `timedelta`)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if value is None:
        value = 0  # Celery: keep results forever
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"setting {label} must be seconds or a timedelta, not {value!r}")
    if value <= 0:
        raise NotSupportedError(
            f"setting {label}={value!r}", "hare keeps results for a positive number of seconds"
        )
    return float(value)


def queue_type(conf: Settings) -> str:
    """The one type hare declares its work queues with, from Celery's queue settings."""
    default_queue = conf.task_default_queue
    declared = declared_queues(conf.task_queues)
    types = {
        name: decl.queue_type for name, decl in declared.items() if decl.queue_type is not None
    }
    default_type = conf.task_default_queue_type
    types.setdefault(default_queue, default_type)
    if conf.value_set_for("task_create_missing_queue_type"):
        types.setdefault("(queues not in task_queues)", conf.task_create_missing_queue_type)
    found = set(types.values())
    if len(found) > 1:
        listed = ", ".join(f"{name}: {kind}" for name, kind in sorted(types.items()))
        raise NotSupportedError(
            f"queues of different types ({listed})",
            "hare declares every work queue of an app with one type",
        )
    return found.pop()


def hare_settings(conf: Settings) -> dict[str, Any]:
    """The arguments of `hare.Hare(main, **arguments)` for a Celery configuration."""
    arguments: dict[str, Any] = {
        "default_queue": conf.task_default_queue,
        "queue_type": queue_type(conf),
        "serializer": conf.task_serializer,
        "accept_content": list(conf.accept_content),
        "result_backend": result_backend(conf.result_backend),
        "result_expires": seconds("result_expires", conf.result_expires),
        "track_started": bool(conf.task_track_started),
        "result_extended": bool(conf.result_extended),
        "worker_send_task_events": bool(conf.worker_send_task_events),
    }
    url, use_ssl = conf.broker_url, conf.broker_use_ssl
    if url or use_ssl:
        arguments["broker"] = broker_url(url or _CELERY_DEFAULT_BROKER_URL, use_ssl)
    max_priority = conf.task_queue_max_priority
    if max_priority is not None:
        if arguments["queue_type"] != "classic":
            raise NotSupportedError(
                f"setting task_queue_max_priority={max_priority!r} with quorum queues",
                "x-max-priority is for classic queues; hare gives quorum queues priorities by "
                "bands (<queue>.high), with no setting",
            )
        arguments["queue_max_priority"] = max_priority
    if conf.value_set_for("broker_heartbeat"):
        arguments["heartbeat"] = int(conf.broker_heartbeat)
    if conf.value_set_for("broker_connection_timeout"):
        arguments["connect_timeout"] = float(conf.broker_connection_timeout)
    return arguments
