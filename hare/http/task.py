"""HTTP push tasks on an app: `app.http_task(url, ...)` hooks and `app.push(url, ...)`.

`Pushes` (one per app, `app.http`) registers the built-in task `hare.http.push` on the app
the first time it is used, with the worker's start and stop hooks (httpx checked at start,
the client closed at stop), keeps the hooks by name, and sends pushes as ordinary task
messages (`hare.http.spec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Final, final

from hare.errors import ConfigurationError
from hare.http.deliver import Deliverer, HookSecrets, check_httpx
from hare.http.errors import InvalidPush
from hare.http.spec import (
    DEFAULT_RETRY,
    PUSH_TASK,
    PushSpec,
    Sending,
    check_headers,
    check_method,
    check_url,
    encode_body,
)
from hare.task import Sent

if TYPE_CHECKING:
    from hare.app import Hare

__all__ = ("UNSET", "HttpTask", "Pushes")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: `json=` not given (`json=None` sends JSON `null`).
UNSET: Final = _Unset()
_SENDING = frozenset(f.name for f in fields(Sending))
_RETRY = frozenset(
    {"max_retries", "default_retry_delay", "retry_backoff", "retry_backoff_max", "retry_jitter"}
)


@final
class HttpTask:
    """A URL to push to, and how: what `app.http_task(url, ...)` returns.

    `delay(json=...)` / `await adelay(json=...)` send a push to it; `apply_async(json=...,
    countdown=...)` takes the options of any task's `apply_async` as well.
    """

    def __init__(self, pushes: Pushes, template: PushSpec, queue: str | None) -> None:
        self._pushes = pushes
        self.template = template
        self.name = template.hook or template.url
        self.url = template.url
        self.method = template.method
        self._queue = queue

    def __repr__(self) -> str:
        return f"<HttpTask {self.name}: {self.method} {self.url}>"

    @property
    def queue(self) -> str:
        return self._queue or self._pushes.app.route(PUSH_TASK)

    def delay(
        self,
        *,
        json: Any = UNSET,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Sent:
        """Send a push from sync code; returns once the broker confirmed it."""
        return self.apply_async(json=json, data=data, headers=headers)

    async def adelay(
        self,
        *,
        json: Any = UNSET,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Sent:
        """Send a push from async code; returns once the broker confirmed it."""
        return await self.aapply_async(json=json, data=data, headers=headers)

    def apply_async(
        self,
        *,
        json: Any = UNSET,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Sent:
        """Send a push with a task's options (`countdown=`, `eta=`, `expires=`, `task_id=`...)."""
        spec = self._spec(json, data, headers)
        return self._pushes.send(spec, {"queue": self.queue, **options})

    async def aapply_async(
        self,
        *,
        json: Any = UNSET,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Sent:
        """`apply_async` for async code."""
        spec = self._spec(json, data, headers)
        return await self._pushes.asend(spec, {"queue": self.queue, **options})

    def _spec(
        self, json: Any, data: bytes | str | None, headers: Mapping[str, str] | None
    ) -> PushSpec:
        return with_body(self.template, json, data, headers)


class Pushes:
    """The HTTP push tasks of one app (`app.http`)."""

    def __init__(self, app: Hare) -> None:
        self.app = app
        #: The app's hooks by name, and what each keeps in the worker's process.
        self.hooks: dict[str, HttpTask] = {}
        self.secrets: dict[str, HookSecrets] = {}
        self.deliverer = Deliverer(lambda: app.settings, self.secrets, app.clock)
        task = app.tasks.get(PUSH_TASK)
        if task is None:
            task = app.task(name=PUSH_TASK, max_retries=None)(self.deliverer.deliver)
            app.on_startup(check_httpx)
            app.on_shutdown(self.deliverer.aclose)
        #: The built-in task that delivers pushes (`hare.http.push`).
        self.task = task

    def hook(
        self,
        url: str,
        *,
        name: str | None = None,
        method: str = "POST",
        queue: str | None = None,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        signing_secret: str | None = None,
        **options: Any,
    ) -> HttpTask:
        """Define a hook (`app.http_task`); see docs/http-tasks.md for the options."""
        sending, retry, rest = _split(options)
        if rest:
            raise InvalidPush(f"http_task: unknown option(s) {', '.join(sorted(rest))}")
        method = check_method(method)
        name = name or f"{method} {check_url(url)}"
        template = PushSpec(
            url=check_url(url),
            method=method,
            headers=check_headers(headers or {}),
            hook=name,
            sending=Sending(**sending),
            retry=replace(DEFAULT_RETRY, **retry),
        )
        if sending.get("follow_redirects") and secret_headers:
            raise InvalidPush(
                "http_task: follow_redirects=True cannot go with secret_headers=: a redirect "
                "to another host would carry them there (httpx drops only Authorization and "
                "Cookie). Point the hook at the final URL instead"
            )
        secrets = HookSecrets(
            url=template.url,
            method=template.method,
            follow_redirects=template.sending.follow_redirects,
            signing_secret=signing_secret,
            secret_headers=check_headers(secret_headers or {}, secret=True),
        )
        if name in self.hooks and (self.hooks[name].template, self.secrets[name]) != (
            template,
            secrets,
        ):
            raise ConfigurationError(f"two different http tasks are named {name!r}")
        task = HttpTask(self, template, queue)
        self.hooks[name], self.secrets[name] = task, secrets
        return task

    def one_off(
        self, url: str, method: str, json: Any, data: bytes | str | None, options: dict[str, Any]
    ) -> tuple[PushSpec, dict[str, Any]]:
        """The spec of `app.push(...)` and the options left for sending it."""
        headers = options.pop("headers", None)
        sending, retry, rest = _split(options)
        template = PushSpec(
            url=check_url(url),
            method=check_method(method),
            sending=Sending(**sending),
            retry=replace(DEFAULT_RETRY, **retry),
        )
        return with_body(template, json, data, headers), rest

    def send(self, spec: PushSpec, options: dict[str, Any]) -> Sent:
        """Publish a push from sync code (confirmed)."""
        return self.app.send_task(PUSH_TASK, (), spec.to_kwargs(), **_send_options(spec, options))

    async def asend(self, spec: PushSpec, options: dict[str, Any]) -> Sent:
        """Publish a push from async code (confirmed)."""
        kwargs = spec.to_kwargs()
        return await self.app.asend_task(PUSH_TASK, (), kwargs, **_send_options(spec, options))


def with_body(
    template: PushSpec, json: Any, data: bytes | str | None, headers: Mapping[str, str] | None
) -> PushSpec:
    """`template` with a body (exactly one of `json=` and `data=`) and more headers."""
    body, content_type = encode_body(json, data, has_json=json is not UNSET, method=template.method)
    merged = {**template.headers, **check_headers(headers or {})}
    if content_type and not any(k.lower() == "content-type" for k in merged):
        merged["Content-Type"] = content_type
    return replace(template, headers=merged, body=body)


def _split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Options as (how it is sent, its retry policy, the rest)."""
    sending = {k: v for k, v in options.items() if k in _SENDING}
    retry = {k: v for k, v in options.items() if k in _RETRY}
    rest = {k: v for k, v in options.items() if k not in _SENDING and k not in _RETRY}
    return sending, retry, rest


def _send_options(spec: PushSpec, options: dict[str, Any]) -> dict[str, Any]:
    """The task options of a push, with a `kwargsrepr` that shows no body and no headers."""
    summary = (
        f"{{'method': {spec.method!r}, 'url': {spec.url!r}, 'body': <{len(spec.body)} bytes>}}"
    )
    if options.get("queue") is None:
        options.pop("queue", None)
    return {"kwargsrepr": summary, **options}
