"""Settings: one frozen value, resolved once from arguments and `HARE_*` environment variables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from hare.core.envelope import DEFAULT_MAX_MESSAGE_SIZE
from hare.core.priority import check_max_priority, check_priority
from hare.core.topology import QueueType, validate_queue_name
from hare.errors import ConfigurationError

__all__ = ("DEFAULT_BROKER_URL", "Settings", "mask_url")

DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672/"

#: RabbitMQ's highest `max_message_size` (512 MiB).
MAX_MESSAGE_SIZE_CEILING = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything an app needs to know that is not a task.

    Resolution order, highest first: `HARE_*` environment variables (so a deployment can point
    the same code at another broker), then arguments given to `Hare(...)`, then these defaults.
    """

    #: `amqp://...`, several separated by `;` (tried in turn), or `memory://` (in-process).
    broker_url: str = DEFAULT_BROKER_URL
    #: Where a task without `queue=` goes.
    default_queue: str = "default"
    #: Queue type of hare-owned work queues: replicated `quorum`, or `classic`, which is
    #: declared exactly as Celery declares its queues so both can share them.
    queue_type: QueueType = "quorum"
    #: Deliveries of one message before a quorum queue dead-letters it (poison guard).
    delivery_limit: int = 10
    #: Serializer for outgoing task messages.
    serializer: str = "json"
    #: Serializers (names or content types) a worker accepts; pickle is never implied.
    accept_content: frozenset[str] = frozenset({"json"})
    #: Seconds to get a connection before `BrokerUnavailable`.
    connect_timeout: float = 10.0
    #: Seconds to wait for a publish confirm before `PublishTimeout`.
    publish_timeout: float = 30.0
    #: AMQP heartbeat interval in seconds.
    heartbeat: int = 30
    #: The largest message body hare publishes, in bytes; a larger one raises
    #: `MessageTooLarge` before it is sent. RabbitMQ 4.x's own default limit (16 MiB; 3.x:
    #: 128 MiB); raise both together, up to RabbitMQ's ceiling of 512 MiB.
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: The deployment's generation (e.g. a release number): a periodic schedule whose spec
    #: changed replaces the pending tick of an older generation's.
    generation: int = 0
    #: Seconds between a worker's checks that every schedule has its pending tick.
    watchdog_interval: float = 60.0
    #: Where task results go: `None` (results off), `rpc://` (replies to the caller's own
    #: queue, Celery's rpc format), `redis://host:port/db` (a shared store any process can
    #: read, Celery's Redis key format) or `memory://` (in-process, for tests).
    result_backend: str | None = None
    #: Seconds a stored result (and an idle rpc reply queue) is kept.
    result_expires: float = 86400.0
    #: How a delayed task (countdown=, eta=, a retry) travels: "ladder" parks it in the broker
    #: until due; "eta-header" publishes it at once with only its `eta` header, as Celery does,
    #: for queues served by Celery workers that should hold it themselves.
    delays: Literal["ladder", "eta-header"] = "ladder"
    #: Store a `STARTED` result (`{"pid", "hostname"}`) before each task runs, as Celery's
    #: `task_track_started` does; a task's own `track_started` attribute overrides it.
    track_started: bool = False
    #: Store with each result the task's name, args, kwargs, worker, retries and queue, as
    #: Celery's `result_extended` does (`AsyncResult.name`, `.args`, `.kwargs`...).
    result_extended: bool = False
    #: Workers send Celery's monitoring events (worker heartbeats, task events) to the
    #: `celeryev` exchange, for Flower and `celery events`, as Celery's `worker_send_task_events`
    #: (`hare worker -E`); off: nothing is sent.
    worker_send_task_events: bool = False
    #: HTTP push tasks (`hare.http`): the secret that signs requests (`X-Hare-Signature`);
    #: none: requests are not signed. Never shown in `repr()`.
    http_signing_secret: str | None = field(default=None, repr=False)
    #: Seconds a push request may take as a whole, and how many may be under way at once to
    #: one scheme, host and port from one worker process; a hook or push may set its own.
    http_timeout: float = 30.0
    http_max_per_host: int = 10
    #: The priority (0-9, higher is more urgent) of a message whose call and task give none
    #: (Celery's `task_default_priority`); `None`: no priority.
    default_priority: int | None = None
    #: Quorum work queues get priorities by bands: priorities 5-9 travel in `<queue>.high`,
    #: which workers consume first (`hare.core.priority`). False: one queue, and only the
    #: message's priority property (RabbitMQ 4.3's quorum queues order by it themselves).
    priority_bands: bool = True
    #: Classic work queues are declared with `x-max-priority` this high, so the broker orders
    #: them by priority (Celery's `task_queue_max_priority`); `None`: no priorities.
    queue_max_priority: int | None = None

    def __post_init__(self) -> None:
        validate_queue_name(self.default_queue)
        if self.queue_type not in get_args(QueueType):
            raise ConfigurationError(
                f"queue_type must be one of {get_args(QueueType)}, not {self.queue_type!r}"
            )
        if self.delivery_limit < 1:
            raise ConfigurationError("delivery_limit must be at least 1")
        if not 1 <= self.max_message_size <= MAX_MESSAGE_SIZE_CEILING:
            raise ConfigurationError(
                f"max_message_size must be 1 to {MAX_MESSAGE_SIZE_CEILING} bytes (RabbitMQ's "
                f"ceiling), not {self.max_message_size!r}"
            )
        for name in (*_SECONDS, "http_max_per_host"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        if self.delays not in ("ladder", "eta-header"):
            raise ConfigurationError(
                f"delays must be 'ladder' or 'eta-header', not {self.delays!r}"
            )
        check_priority(self.default_priority)
        check_max_priority(self.queue_max_priority)
        if self.queue_max_priority is not None and self.queue_type != "classic":
            raise ConfigurationError(
                "queue_max_priority is for classic queues (x-max-priority); quorum queues get "
                "priorities by bands (priority_bands), or natively on RabbitMQ 4.3"
            )
        for flag in _FLAGS:
            if not isinstance(getattr(self, flag), bool):
                raise ConfigurationError(
                    f"{flag} must be True or False, not {getattr(self, flag)!r}"
                )
        if not self.accept_content:
            raise ConfigurationError("accept_content must name at least one serializer")

    @classmethod
    def resolve(cls, arguments: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Build settings from `Hare(...)` arguments, overridden by `HARE_<NAME>` variables."""
        known = {f.name for f in fields(cls)}
        unknown = set(arguments) - known
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {k: v for k, v in arguments.items() if v is not None}
        for name in known:
            raw = environ.get("HARE_" + name.upper())
            if raw is not None and raw != "":
                values[name] = _parse(name, raw)
        if "accept_content" in values:
            values["accept_content"] = frozenset(_names(values["accept_content"]))
        return cls(**values)

    @property
    def bands(self) -> bool:
        """Whether work queues get priority bands (quorum queues, `priority_bands`)."""
        return self.priority_bands and self.queue_type == "quorum"

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)


_FLAGS = ("track_started", "result_extended", "priority_bands", "worker_send_task_events")
_INTEGERS = (
    "delivery_limit",
    "heartbeat",
    "generation",
    "max_message_size",
    "http_max_per_host",
    "default_priority",
    "queue_max_priority",
)
_SECONDS = (
    "connect_timeout",
    "publish_timeout",
    "watchdog_interval",
    "result_expires",
    "http_timeout",
)


def _names(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def _parse(name: str, raw: str) -> Any:
    """Turn the text of an environment variable into the setting's type."""
    try:
        if name in _INTEGERS:
            return int(raw)
        if name in _SECONDS:
            return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"HARE_{name.upper()}={raw!r} is not a number") from exc
    if name == "accept_content":
        return _names(raw)
    if name in _FLAGS:
        return _flag(name, raw)
    return raw


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"HARE_{name.upper()}={raw!r} is not a boolean (true or false)")


def mask_url(url: str) -> str:
    """The broker URL (or `;`-joined URLs) with any password replaced, for messages and logs.

    >>> mask_url("amqp://u:pw@h:5672/v;amqp://h2/")
    'amqp://u:***@h:5672/v;amqp://h2/'
    """
    masked = []
    for one in url.split(";"):
        parts = urlsplit(one.strip())
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]  # a password may itself contain '@'
            one = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
        masked.append(one)
    return ";".join(masked)
