"""The pidbox wire format, checked against kombu 5.7's own objects and bodies."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from kombu.pidbox import Mailbox
from kombu.transport.base import to_rabbitmq_queue_arguments

from hare.control import pidbox
from hare.core.topology import Queue
from hare.errors import MalformedMessage

#: A request exactly as a Celery 5.7 client sends it (captured from `inspect().ping()`).
CELERY_PING = (
    b'{"method": "ping", "arguments": {}, "destination": null, "pattern": null, '
    b'"matcher": null, "ticket": "a77ce122-30d9-45ea-9723-90cc91944809", "reply_to": '
    b'{"exchange": "reply.celery.pidbox", "routing_key": "3287fa2a-65b1-3f2c-94b4-2d4d9cb47936"}}'
)


def celery_mailbox() -> Any:
    """The Mailbox a Celery 5.7 app builds with its default settings (app.control)."""
    from celery import Celery

    return Celery("t", broker="memory://").control.mailbox


def _as_kombu(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "durable": queue.durable,
        "exclusive": queue.exclusive,
        "auto_delete": queue.auto_delete,
        "expires": queue.arguments["x-expires"] / 1000,
        "message_ttl": queue.arguments["x-message-ttl"] / 1000,
    }


def _kombu_arguments(queue: Any) -> dict[str, Any]:
    """The arguments kombu's queue.declare sends for `queue`."""
    return dict(
        to_rabbitmq_queue_arguments(
            queue.queue_arguments or {}, expires=queue.expires, message_ttl=queue.message_ttl
        )
    )


def _kombu_queue(queue: Any) -> dict[str, Any]:
    return {
        key: getattr(queue, key)
        for key in ("name", "durable", "exclusive", "auto_delete", "expires", "message_ttl")
    }


def test_node_queue_is_declared_as_a_celery_worker_declares_it() -> None:
    mailbox = celery_mailbox()
    kombu_queue = mailbox.get_queue("w1@host")

    ours = pidbox.node_queue("w1@host")

    assert _as_kombu(ours) == _kombu_queue(kombu_queue)
    assert ours.arguments == _kombu_arguments(kombu_queue)
    exchange = pidbox.control_exchange()
    assert (exchange.name, exchange.type, exchange.durable, exchange.auto_delete) == (
        mailbox.exchange.name,
        mailbox.exchange.type,
        mailbox.exchange.durable,
        mailbox.exchange.auto_delete,
    )
    binding = pidbox.node_binding("w1@host")
    assert (binding.exchange, binding.destination, binding.routing_key) == (
        "celery.pidbox",
        "w1@host.celery.pidbox",
        kombu_queue.routing_key or "",
    )


def test_reply_queue_is_declared_as_kombu_declares_it() -> None:
    mailbox = celery_mailbox()
    kombu_queue = mailbox.reply_queue

    ours = pidbox.reply_queue(mailbox.oid)

    assert _as_kombu(ours) == _kombu_queue(kombu_queue)
    assert ours.arguments == _kombu_arguments(kombu_queue)
    assert pidbox.reply_binding(mailbox.oid).routing_key == kombu_queue.routing_key
    exchange = pidbox.reply_exchange()
    assert (exchange.name, exchange.type, exchange.durable) == (
        mailbox.reply_exchange.name,
        mailbox.reply_exchange.type,
        mailbox.reply_exchange.durable,
    )


def test_namespace_renames_everything() -> None:
    mailbox: Any = cast(Any, Mailbox)("ops", type="fanout")
    assert pidbox.control_exchange("ops").name == mailbox.exchange.name == "ops.pidbox"
    assert pidbox.reply_exchange("ops").name == mailbox.reply_exchange.name
    assert pidbox.node_queue("n@h", "ops").name == mailbox.get_queue("n@h").name


def test_default_nodename() -> None:
    assert pidbox.default_nodename("web-1") == "hare@web-1"


def test_decode_a_celery_request() -> None:
    request = pidbox.decode_request(CELERY_PING, {"clock": 7, "expires": 1795365149.5})

    assert request == pidbox.Request(
        method="ping",
        arguments={},
        ticket="a77ce122-30d9-45ea-9723-90cc91944809",
        reply_to=pidbox.ReplyTo("reply.celery.pidbox", "3287fa2a-65b1-3f2c-94b4-2d4d9cb47936"),
        clock=7,
        expires=1795365149.5,
    )


def test_encoded_request_has_kombus_keys_and_round_trips() -> None:
    reply_to = pidbox.ReplyTo("reply.celery.pidbox", "oid")
    body = pidbox.encode_request(
        "revoke",
        {"task_id": ["a"], "terminate": False},
        destination=["w1@h"],
        ticket="t-1",
        reply_to=reply_to,
    )

    assert json.loads(body) == {
        "method": "revoke",
        "arguments": {"task_id": ["a"], "terminate": False},
        "destination": ["w1@h"],
        "pattern": None,
        "matcher": None,
        "ticket": "t-1",
        "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"},
    }
    request = pidbox.decode_request(body, {"clock": 3, "expires": 0})
    assert (request.method, request.destination, request.reply_to) == (
        "revoke",
        ("w1@h",),
        reply_to,
    )
    assert request.expires is None  # 0 means "never"


def test_cast_has_no_ticket_or_reply_to() -> None:
    body = json.loads(pidbox.encode_request("revoke", {"task_id": "a"}))
    assert "ticket" not in body and "reply_to" not in body
    assert pidbox.decode_request(json.dumps(body).encode(), {}).reply_to is None


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        (b"not json", "application/json", "not JSON"),
        (b"[1, 2]", "application/json", "not an object"),
        (b'{"arguments": {}}', "application/json", "without a method"),
        (b'{"method": ""}', "application/json", "without a method"),
        (b'{"method": "ping", "arguments": [1]}', "application/json", "arguments"),
        (b'{"method": "ping", "destination": "w1@h"}', "application/json", "destination"),
        (b'{"method": "ping", "destination": [1]}', "application/json", "destination"),
        (b'{"method": "ping", "reply_to": "q"}', "application/json", "reply_to"),
        (b'{"method": "ping", "ticket": 5}', "application/json", "ticket"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "JSON only"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body: bytes, content_type: str, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        pidbox.decode_request(body, {}, content_type)


def test_bad_header_values_are_read_as_absent() -> None:
    request = pidbox.decode_request(b'{"method": "ping"}', {"clock": "x", "expires": True})
    assert (request.clock, request.expires) == (0, None)


def _request(**fields: Any) -> pidbox.Request:
    return pidbox.Request(method="ping", **fields)


@pytest.mark.parametrize(
    ("fields", "addressed"),
    [
        ({}, True),
        ({"destination": ("a@h", "me@h")}, True),
        ({"destination": ("a@h",)}, False),
        ({"destination": None, "pattern": "me@*", "matcher": "glob"}, True),
        ({"pattern": "other@*", "matcher": "glob"}, False),
        ({"pattern": r"m.@h$", "matcher": "pcre"}, True),
        ({"pattern": r"e@h", "matcher": "pcre"}, False),  # re.match anchors at the start
        ({"pattern": r"(", "matcher": "pcre"}, False),
        ({"pattern": "me@*", "matcher": "fancy"}, False),
        ({"pattern": "other@*"}, True),  # a pattern without a matcher is ignored, as kombu does
        ({"destination": ("a@h",), "pattern": "me@*", "matcher": "glob"}, False),
    ],
)
def test_is_addressed_to(fields: dict[str, Any], addressed: bool) -> None:
    assert pidbox.is_addressed_to(_request(**fields), "me@h") is addressed


def test_is_expired_allows_for_clock_skew() -> None:
    request = _request(expires=1000.0)
    assert not pidbox.is_expired(request, 1009.9, tolerance=10)
    assert pidbox.is_expired(request, 1010.1, tolerance=10)
    assert not pidbox.is_expired(_request(), 10**12, tolerance=0)


def test_replies_round_trip_and_flatten() -> None:
    body = pidbox.encode_reply("hare@h", {"ok": "pong"})
    assert json.loads(body) == {"hare@h": {"ok": "pong"}}
    assert pidbox.decode_reply(body) == {"hare@h": {"ok": "pong"}}
    flat = pidbox.flatten_replies([{"a@h": 1}, {"b@h": [2]}])
    assert flat == {"a@h": 1, "b@h": [2]}
    with pytest.raises(MalformedMessage):
        pidbox.decode_reply(b"[]")
    with pytest.raises(MalformedMessage):
        pidbox.decode_reply(b"{")


def test_lamport_clock() -> None:
    clock = pidbox.LamportClock()
    assert clock.forward() == 1
    assert clock.adjust(10) == 11
    assert clock.adjust(3) == 12
    assert clock.value == 12


@pytest.mark.parametrize(
    ("template", "index", "expected"),
    [
        ("w1@%h", None, "w1@db1.example.com"),
        ("%n-worker", None, "db1-worker@db1.example.com"),
        ("w@%d", None, "w@example.com"),
        ("w%i@%h", 2, "w2@db1.example.com"),
        ("w@%h", 3, "w-3@db1.example.com"),  # every --processes child a name of its own
        ("w", 1, "w-1@db1.example.com"),
        ("100%%", None, "100%@db1.example.com"),
        ("gen42@vm", None, "gen42@vm"),
    ],
)
def test_node_names_expand_as_celery_s_dash_n(
    template: str, index: int | None, expected: str
) -> None:
    assert pidbox.expand_nodename(template, "db1.example.com", index) == expected
