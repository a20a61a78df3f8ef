"""The built-in task `hare.http.push`: make the request a push message describes, and tell
the worker what became of it.

A 2xx returns the push's result. A response or failure worth another attempt raises
`Retry(countdown=..., exc=PushFailed(...), max_retries=...)`, so the retry goes through the
delay ladder and counts against the push's `max_retries` like any task's; one that is not
raises `DeadLetterError(reason, detail)`. See `hare.http.classify` for which is which.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import random
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hare._version import __version__
from hare.clock import Clock
from hare.context import current
from hare.core.ladder import MAX_DELAY_SECONDS
from hare.errors import ConfigurationError, DeadLetterError, Retry
from hare.http.classify import Delivered, GiveUp, RetryLater, classify, retry_delay
from hare.http.classify import transport_failure as no_response_step
from hare.http.errors import InvalidPush, PushFailed
from hare.http.headers import outgoing
from hare.http.spec import PushSpec

if TYPE_CHECKING:
    from hare.core.settings import Settings
    from hare.http.client import Dispatcher

__all__ = ("Deliverer", "HookSecrets", "check_httpx")

logger = logging.getLogger("hare.http")


@dataclass(frozen=True, slots=True, kw_only=True)
class HookSecrets:
    """What a hook keeps in the worker's process, never in a message: its secrets, and the
    one request they may go with. A message names its hook, but its URL, method and
    redirect policy are the producer's word: the worker adds the secrets only when they
    are the hook's own (else the push is dead-lettered `http-hook-mismatch`)."""

    url: str
    method: str
    follow_redirects: bool = False
    #: Signs its requests instead of the app's `http_signing_secret`; "" signs nothing.
    signing_secret: str | None = field(default=None, repr=False)
    #: Headers added by the worker (credentials: Authorization, Cookie...).
    secret_headers: Mapping[str, str] = field(default_factory=dict, repr=False)


class Deliverer:
    """Delivers the pushes of one app: `deliver` is the `hare.http.push` task."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        hooks: Mapping[str, HookSecrets],
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._hooks = hooks
        self._clock = clock
        self._rng = rng or random.Random()
        self._dispatchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dispatcher] = (
            weakref.WeakKeyDictionary()
        )

    async def deliver(self, **kwargs: Any) -> dict[str, Any]:
        """The `hare.http.push` task: make the request `kwargs` describe (a `PushSpec`)."""
        context = current()
        task_id = context.id if context is not None else "eager"
        retries = context.retries if context is not None else 0
        try:
            spec = PushSpec.from_kwargs(kwargs)
        except InvalidPush as exc:
            raise DeadLetterError("http-malformed", str(exc)) from None
        secret, secret_headers = self._secrets(spec)
        settings = self._settings()
        if secret is None:
            secret = settings.http_signing_secret
        if not (task_id.isascii() and task_id.isprintable()):
            raise DeadLetterError("http-malformed", _BAD_ID.format(task_id))
        headers = outgoing(
            {**spec.headers, **secret_headers},
            method=spec.method,
            url=spec.url,
            task_id=task_id,
            attempt=retries + 1,
            timestamp=int(self._clock.time()),
            body=spec.body,
            secret=secret,
            user_agent=f"hare/{__version__}",
        )
        step = await self._send(spec, headers, retries + 1, settings)
        if isinstance(step, Delivered):
            return step.result
        if isinstance(step, GiveUp):
            raise DeadLetterError(step.reason, step.detail)
        raise self._retry(spec, step, retries, task_id)

    def _secrets(self, spec: PushSpec) -> tuple[str | None, Mapping[str, str]]:
        """The signing secret (None: the app's) and secret headers for `spec`: its hook's,
        when the push asks for exactly the hook's request; else a dead letter."""
        if spec.hook is None:
            return None, {}
        hook = self._hooks.get(spec.hook)
        if hook is None:
            raise DeadLetterError(
                "http-unknown-hook",
                f"the push names http_task {spec.hook!r}, which this worker's app does not "
                "define: its signing secret and secret headers are unknown here",
            )
        asked = (spec.method, spec.url, spec.sending.follow_redirects)
        own = (hook.method, hook.url, hook.follow_redirects)
        if asked != own:
            raise DeadLetterError(
                "http-hook-mismatch",
                f"the push names http_task {spec.hook!r} ({_request(*own)}) but asks for "
                f"{_request(*asked)}: a hook's secrets go only to its own request",
            )
        return hook.signing_secret, hook.secret_headers

    async def _send(
        self, spec: PushSpec, headers: Mapping[str, str], attempt: int, settings: Settings
    ) -> Delivered | RetryLater | GiveUp:
        dispatcher = self.dispatcher()  # first: without httpx, a dead letter
        from hare.http.client import NoResponse

        sending = spec.sending
        try:
            response = await dispatcher.send(
                method=spec.method,
                url=spec.url,
                headers=headers,
                body=spec.body,
                seconds=sending.timeout or settings.http_timeout,
                max_per_host=sending.max_per_host or settings.http_max_per_host,
                follow_redirects=sending.follow_redirects,
            )
        except NoResponse as exc:
            if exc.final:
                return GiveUp(reason=f"http-{exc.kind}", detail=exc.detail)
            return no_response_step(exc.kind, exc.detail, method=spec.method, url=spec.url)
        return classify(
            response, method=spec.method, url=spec.url, attempt=attempt, now=self._clock.time()
        )

    def _retry(self, spec: PushSpec, step: RetryLater, retries: int, task_id: str) -> Retry:
        cap = min(spec.sending.retry_after_max, MAX_DELAY_SECONDS)
        delay, capped = retry_delay(step, spec.retry, retries, self._rng, cap)
        if capped:
            logger.warning(
                "push %s to %s: Retry-After of %.0fs capped at %.0fs (retry_after_max)",
                task_id,
                spec.url,
                step.after,
                cap,
            )
        failure = PushFailed(step.reason, step.detail, step.status)
        return Retry(countdown=delay, exc=failure, max_retries=spec.retry.max_retries)

    def dispatcher(self) -> Dispatcher:
        """This loop's dispatcher, made on first use; without httpx, a dead letter."""
        loop = asyncio.get_running_loop()
        dispatcher = self._dispatchers.get(loop)
        if dispatcher is None:
            try:
                from hare.http.client import Dispatcher
            except ImportError as exc:
                raise DeadLetterError("http-unavailable", _NO_HTTPX) from exc
            dispatcher = self._dispatchers[loop] = Dispatcher()
        return dispatcher

    async def aclose(self) -> None:
        """Close this loop's dispatcher, if it made one (a worker stopping)."""
        dispatcher = self._dispatchers.pop(asyncio.get_running_loop(), None)
        if dispatcher is not None:
            await dispatcher.aclose()


def _request(method: str, url: str, follow_redirects: bool) -> str:
    return f"{method} {url}" + (", following redirects" if follow_redirects else "")


_BAD_ID = (
    "task id {!r} cannot be sent: it travels in the Idempotency-Key and X-Hare-Task-Id "
    "headers, which take printable ASCII only"
)
_NO_HTTPX = "HTTP push tasks need httpx on the worker: pip install 'hare-queue[http]'"


def check_httpx() -> None:
    """Raise `ConfigurationError` now when httpx is not installed (a worker starting)."""
    if importlib.util.find_spec("httpx") is None:
        raise ConfigurationError(_NO_HTTPX)
