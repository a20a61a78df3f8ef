"""Celery protocol v2 <-> Message: golden dumps (celery.md §2.12), malformed cases, round trips."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hare.core.codec import DEFAULT_ACCEPT, accepted_content_types
from hare.core.envelope import Properties
from hare.core.message import Embed, Message
from hare.core.protocol import decode, encode
from hare.errors import ConfigurationError, ContentTypeRefused, MalformedMessage
from tests.core.test_codec import OFFSETS, json_values

BERLIN = timezone(timedelta(hours=1))
NOW = 1_795_350_000.0
NULL_EMBED = b'{"callbacks": null, "errbacks": null, "chain": null, "chord": null}'


def celery_headers(task_id: str, **changes: Any) -> dict[str, Any]:
    """The headers of a plain Celery 5.7 call, in Celery's order, with `changes` applied."""
    headers: dict[str, Any] = {
        "lang": "py",
        "task": "tasks.add",
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "(2, 3)",
        "kwargsrepr": "{}",
        "origin": "gen31415@vm",
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    for key, value in changes.items():
        headers[key] = value  # existing keys keep their place, as in Celery's dict
    return headers


def props(headers: Mapping[str, Any], *, priority: int | None = 0, **kw: Any) -> Properties:
    return Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=priority,
        correlation_id=headers.get("id"),
        **kw,
    )


# --- golden messages, copied from the dumps ----------------------------------------------------

ADD_ID = "a32dd6c1-1aec-4491-b8d2-132c4a2a2aff"
ADD = (
    b"[[2, 3], {}, " + NULL_EMBED + b"]",
    props(celery_headers(ADD_ID), reply_to="a797c82b-f9a3-3564-ae15-c50d336528c7"),
)

ASYNC_ID = "11111111-2222-3333-4444-555555555555"
ASYNC = (
    b'[[2, 3], {}, {"callbacks": [{"task": "tasks.add", "args": [10], "kwargs": {}, "options": {},'
    b' "subtask_type": null, "immutable": false}], "errbacks": [{"task": "tasks.on_err", "args":'
    b' [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}], "chain": null,'
    b' "chord": null}]',
    props(
        celery_headers(
            ASYNC_ID,
            shadow="add-shadow",
            eta="2026-11-22T13:44:36.272867+01:00",
            expires="2026-11-22T14:44:26.272867+01:00",
            origin="gen31418@vm",
        )
        | {"x-custom": "v"},
        priority=5,
        reply_to="2acd717e-26a0-36bc-ae23-fd3b9f4ce772",
        expiration="3600000",
    ),
)

SEND_ID = "c699f549-9ecd-498a-b3f7-694f1c6be46d"
SEND = (
    b'[[5, 6], {"k": 1}, ' + NULL_EMBED + b"]",
    props(
        celery_headers(
            SEND_ID,
            argsrepr="[5, 6]",
            kwargsrepr="{'k': 1}",
            ignore_result=None,
            origin="gen31435@vm",
        ),
        reply_to="5e6a23eb-f5b2-3fe3-b6f7-7e23c9942d56",
    ),
)

CHAIN_ID = "81f5cf8d-592d-4dd4-92dd-4286ff1d2076"
CHAIN_REPLY = "8503bb9c-c4ad-389b-add6-368024c80218"
CHAIN = (
    b'[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": [{"task": "tasks.add", "args":'
    b' [4, 4], "kwargs": {}, "options": {"task_id": "24d7d895-ecdf-4271-a831-35cf3b6ae061",'
    b' "reply_to": "8503bb9c-c4ad-389b-add6-368024c80218"}, "subtask_type": null, "immutable":'
    b' true}, {"task": "tasks.add", "args": [3], "kwargs": {}, "options": {"task_id":'
    b' "7b13cad5-a34f-4054-9e7e-542d3478c1aa", "reply_to": "8503bb9c-c4ad-389b-add6-368024c80218"},'
    b' "subtask_type": null, "immutable": false}], "chord": null}]',
    props(celery_headers(CHAIN_ID, argsrepr="(1, 2)", origin="gen31437@vm"), reply_to=CHAIN_REPLY),
)

GROUP_ID = "a21d3636-2349-467e-8721-ce669e9739c6"
GROUP_REPLY = "0f1ae810-be8b-3fc3-bb2f-f57b1d5143f1"
GROUP = [
    (
        b"[[1, 1], {}, " + NULL_EMBED + b"]",
        props(
            celery_headers(
                "591bd33f-742b-420d-81a2-2fda47e39952",
                group=GROUP_ID,
                group_index=0,
                argsrepr="(1, 1)",
                origin="gen31439@vm",
            ),
            reply_to=GROUP_REPLY,
        ),
    ),
    (
        b"[[2, 2], {}, " + NULL_EMBED + b"]",
        props(
            celery_headers(
                "d7a081f4-2901-43af-b35f-0b7d3384f9b6",
                group=GROUP_ID,
                group_index=1,
                argsrepr="(2, 2)",
                origin="gen31439@vm",
            ),
            reply_to=GROUP_REPLY,
        ),
    ),
]

CHORD_ID = "14f43027-5080-44dd-8d10-f62f39869170"
CHORD = (
    b'[[1, 1], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": {"task":'
    b' "tasks.tsum", "args": [], "kwargs": {}, "options": {"task_id":'
    b' "d1a11b8b-a8d9-4cc0-b465-6474f30b0882", "reply_to": "fa939b6c-33c1-3a6c-8a26-d133e6d3229f",'
    b' "group_id": "4ee819a6-75b3-4b6f-bb6a-d44c5fea7154"}, "subtask_type": null, "immutable":'
    b" false}}]",
    props(
        celery_headers(
            CHORD_ID,
            group="4ee819a6-75b3-4b6f-bb6a-d44c5fea7154",
            group_index=0,
            argsrepr="(1, 1)",
            origin="gen31441@vm",
        ),
        reply_to="fa939b6c-33c1-3a6c-8a26-d133e6d3229f",
    ),
)

RETRY_ID = "aaaaaaaa-0000-0000-0000-000000000004"
RETRY = (
    b"[[7], {}, " + NULL_EMBED + b"]",
    props(
        celery_headers(
            RETRY_ID,
            task="tasks.retry_to_dump",
            eta="2026-11-22T13:28:17.062714+01:00",
            retries=1,
            parent_id=RETRY_ID,
            argsrepr="(7,)",
            origin="gen12759@vm",
        ),
        reply_to="dumpreply",
    ),
)

STEP_ID = "078c15e6-e80d-4471-a410-fb6120e5cda8"
STEP_ROOT = "daa1b072-4971-4d25-9df3-354bae315830"
STEP = (
    b'[[3, 3], {}, {"callbacks": null, "errbacks": null, "chain": [{"task": "tasks.add", "args":'
    b' [4, 4], "kwargs": {}, "options": {"task_id": "cccccccc-0000-0000-0000-00000000000a",'
    b' "reply_to": "a94bd564-bf8f-3b23-9cbf-ea2824b91c28"}, "subtask_type": null, "immutable":'
    b' true}], "chord": null}]',
    props(
        celery_headers(
            STEP_ID, root_id=STEP_ROOT, parent_id=STEP_ROOT, argsrepr="(3, 3)", origin="gen30616@vm"
        ),
        priority=None,
        reply_to="a94bd564-bf8f-3b23-9cbf-ea2824b91c28",
    ),
)

GOLDEN = {
    "add.delay": ADD,
    "apply_async": ASYNC,
    "send_task": SEND,
    "chain": CHAIN,
    "group-0": GROUP[0],
    "group-1": GROUP[1],
    "chord": CHORD,
    "retry": RETRY,
    "chain-step": STEP,
}


def sig(task: str, args: list[Any], options: dict[str, Any], *, immutable: bool = False) -> Any:
    return {
        "task": task,
        "args": args,
        "kwargs": {},
        "options": options,
        "subtask_type": None,
        "immutable": immutable,
    }


def golden_message(body: bytes, properties: Properties, **fields: Any) -> Message:
    """The Message that `body`/`properties` carry, built by hand; fields beyond the common ones."""
    h = properties.headers
    return Message(
        id=h["id"],
        task=h["task"],
        root_id=h["root_id"],
        argsrepr=h["argsrepr"],
        kwargsrepr=h["kwargsrepr"],
        origin=h["origin"],
        reply_to=properties.reply_to,
        correlation_id=h["id"],
        priority=properties.priority,
        **fields,
    )


EXPECTED = {
    "add.delay": golden_message(*ADD, args=(2, 3)),
    "apply_async": golden_message(
        *ASYNC,
        args=(2, 3),
        shadow="add-shadow",
        eta=datetime(2026, 11, 22, 13, 44, 36, 272867, tzinfo=BERLIN),
        expires=datetime(2026, 11, 22, 14, 44, 26, 272867, tzinfo=BERLIN),
        embed=Embed(
            callbacks=(sig("tasks.add", [10], {}),), errbacks=(sig("tasks.on_err", [], {}),)
        ),
        headers={"x-custom": "v"},
    ),
    "send_task": golden_message(*SEND, args=(5, 6), kwargs={"k": 1}, ignore_result=None),
    "chain": golden_message(
        *CHAIN,
        args=(1, 2),
        embed=Embed(
            chain=(
                sig(
                    "tasks.add",
                    [4, 4],
                    {"task_id": "24d7d895-ecdf-4271-a831-35cf3b6ae061", "reply_to": CHAIN_REPLY},
                    immutable=True,
                ),
                sig(
                    "tasks.add",
                    [3],
                    {"task_id": "7b13cad5-a34f-4054-9e7e-542d3478c1aa", "reply_to": CHAIN_REPLY},
                ),
            )
        ),
    ),
    "group-0": golden_message(*GROUP[0], args=(1, 1), group=GROUP_ID, group_index=0),
    "group-1": golden_message(*GROUP[1], args=(2, 2), group=GROUP_ID, group_index=1),
    "chord": golden_message(
        *CHORD,
        args=(1, 1),
        group="4ee819a6-75b3-4b6f-bb6a-d44c5fea7154",
        group_index=0,
        embed=Embed(
            chord=sig(
                "tasks.tsum",
                [],
                {
                    "task_id": "d1a11b8b-a8d9-4cc0-b465-6474f30b0882",
                    "reply_to": "fa939b6c-33c1-3a6c-8a26-d133e6d3229f",
                    "group_id": "4ee819a6-75b3-4b6f-bb6a-d44c5fea7154",
                },
            )
        ),
    ),
    "retry": golden_message(
        *RETRY,
        args=(7,),
        eta=datetime(2026, 11, 22, 13, 28, 17, 62714, tzinfo=BERLIN),
        retries=1,
        parent_id=RETRY_ID,
    ),
    "chain-step": golden_message(
        *STEP,
        args=(3, 3),
        parent_id=STEP_ROOT,
        embed=Embed(
            chain=(
                sig(
                    "tasks.add",
                    [4, 4],
                    {
                        "task_id": "cccccccc-0000-0000-0000-00000000000a",
                        "reply_to": "a94bd564-bf8f-3b23-9cbf-ea2824b91c28",
                    },
                    immutable=True,
                ),
            )
        ),
    ),
}


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_decode(name: str) -> None:
    body, properties = GOLDEN[name]
    assert decode(body, properties, accept=DEFAULT_ACCEPT) == EXPECTED[name]


def _now_for(properties: Properties) -> float:
    # The dumps do not record when they were sent; for `expires` the TTL says so.
    expires = properties.headers["expires"]
    if expires is None:
        return NOW
    return datetime.fromisoformat(expires).timestamp() - int(properties.expiration or 0) / 1000


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_encode(name: str) -> None:
    body, properties = GOLDEN[name]
    message = replace(EXPECTED[name], origin=None)
    got_body, got = encode(message, now=_now_for(properties))
    expected_headers = dict(properties.headers, origin=None)
    assert list(got.headers) == list(expected_headers)
    assert got.headers == expected_headers
    assert json.loads(got_body) == json.loads(body)
    assert got_body == body  # kombu's json.dumps defaults: byte for byte
    assert replace(got, headers={}) == replace(properties, headers={})


def test_golden_encode_derives_reprs_and_ids_as_celery_does() -> None:
    # add.delay(2, 3) from only what the caller gave: Celery's defaults fill the rest.
    body, properties = ADD
    message = Message(id=ADD_ID, task="tasks.add", args=(2, 3), reply_to=properties.reply_to)
    got_body, got = encode(message, now=NOW)
    assert got.headers == dict(properties.headers, origin=None)
    assert got_body == body
    assert (got.correlation_id, got.priority, got.expiration) == (ADD_ID, None, None)


@pytest.mark.parametrize(
    ("eta", "expected"),
    [
        ("2030-01-02T03:04:05+00:00", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T04:04:05.5+01:00", datetime(2030, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        (datetime(2030, 1, 2, 3, 4, 5), datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_golden_eta_aware_and_naive(eta: Any, expected: datetime) -> None:
    body, properties = ADD
    message = decode(body, props(celery_headers(ADD_ID, eta=eta)), accept=DEFAULT_ACCEPT)
    assert message.eta == expected
    assert message.eta is not None and message.eta.tzinfo is not None


def test_encode_eta_isoformat_keeps_microseconds_only_when_set() -> None:
    base = Message(id="i", task="t")
    whole = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    _, got = encode(replace(base, eta=whole), now=NOW)
    assert got.headers["eta"] == "2030-01-02T03:04:05+00:00"
    _, got = encode(replace(base, eta=whole + timedelta(microseconds=1)), now=NOW)
    assert got.headers["eta"] == "2030-01-02T03:04:05.000001+00:00"


# --- encode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires", "expiration"),
    [
        (datetime.fromtimestamp(NOW + 3600, UTC), "3600000"),
        (datetime.fromtimestamp(NOW + 0.0016, BERLIN), "2"),
        (datetime.fromtimestamp(NOW - 10, UTC), "0"),
        (datetime.fromtimestamp(NOW + 60, UTC).replace(tzinfo=None), "60000"),
    ],
)
def test_encode_expiration(expires: datetime, expiration: str) -> None:
    _, got = encode(Message(id="i", task="t", expires=expires), now=NOW)
    assert got.expiration == expiration


def test_encode_properties_defaults() -> None:
    _, got = encode(Message(id="i", task="t", reply_to="", priority=3), now=NOW)
    assert got == Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=got.headers,
        delivery_mode=2,
        priority=3,
        correlation_id="i",
        reply_to=None,
        expiration=None,
    )
    assert got.headers["root_id"] == "i"


def test_encode_merges_user_headers_last_in_order() -> None:
    headers = {"x-b": 1, "hare-attempt": 2, "x-a": [3], "stamps": {"s": ["v"]}}
    _, got = encode(Message(id="i", task="t", headers=headers), now=NOW)
    assert list(got.headers)[-3:] == ["x-b", "hare-attempt", "x-a"]
    assert list(got.headers)[:19] == list(celery_headers("i"))
    assert got.headers["stamps"] == {"s": ["v"]}


@pytest.mark.parametrize("key", ["id", "task", "retries", "lang"])
def test_encode_refuses_headers_that_overwrite_fields(key: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        encode(Message(id="i", task="t", headers={key: "x"}), now=NOW)


@pytest.mark.parametrize(
    ("args", "kwargs", "argsrepr", "kwargsrepr"),
    [
        ((7,), {}, "(7,)", "{}"),
        ((), {"b": 1, "a": 2}, "()", "{'b': 1, 'a': 2}"),
        (([1, {"z": 1, "a": 2}],), {"k": (1,)}, "([1, {'z': 1, 'a': 2}],)", "{'k': (1,)}"),
        ((10**5000,), {}, "<unrepresentable tuple>", "{}"),
    ],
)
def test_encode_reprs(
    args: tuple[Any, ...], kwargs: dict[str, Any], argsrepr: str, kwargsrepr: str
) -> None:
    message = Message(id="i", task="t", args=args, kwargs=kwargs)
    _, got = encode(message, now=NOW, serializer="pickle")
    assert got.headers["argsrepr"].startswith(argsrepr)
    assert got.headers["kwargsrepr"] == kwargsrepr


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_encode_reprs_are_bounded_and_never_raise() -> None:
    big = ("x" * 5000, list(range(5000)))
    _, got = encode(Message(id="i", task="t", args=big, kwargs={"h": 1}), now=NOW)
    assert len(got.headers["argsrepr"]) == 1024
    assert got.headers["argsrepr"].endswith("...")
    message = Message(id="i", task="t", args=(1,), argsrepr="(1,)")
    assert encode(message, now=NOW)[1].headers["argsrepr"] == "(1,)"
    _, got = encode(
        replace(message, args=([Hostile()],), argsrepr=None), now=NOW, serializer="pickle"
    )
    assert "Hostile" in got.headers["argsrepr"]


def test_encode_accepts_any_mapping_for_kwargs() -> None:
    body, _ = encode(Message(id="i", task="t", kwargs=MappingProxyType({"a": 1})), now=NOW)
    assert json.loads(body)[1] == {"a": 1}


def test_encode_pickle_keeps_celery_shapes() -> None:
    chain = (sig("tasks.add", [3], {}),)
    message = Message(id="i", task="t", args=(1, (2,)), embed=Embed(chain=chain))
    body, got = encode(message, now=NOW, serializer="pickle")
    assert (got.content_type, got.content_encoding) == ("application/x-python-serialize", "binary")
    args, kwargs, embed = pickle.loads(body)
    assert (args, kwargs) == ((1, (2,)), {})
    assert isinstance(embed["chain"], list)  # Celery's worker pops it
    accept = accepted_content_types(["pickle"])
    back = decode(body, got, accept=accept)
    assert back.content_type == "application/x-python-serialize"
    assert back.args == (1, (2,)) and back.embed == message.embed


def test_encode_uses_the_message_content_type_by_default() -> None:
    message = Message(id="i", task="t", content_type="application/x-python-serialize")
    assert encode(message, now=NOW)[1].content_type == "application/x-python-serialize"
    assert encode(message, now=NOW, serializer="json")[1].content_type == "application/json"


# --- decode: tolerance -------------------------------------------------------------------------


def add_with(**changes: Any) -> Properties:
    return props(celery_headers(ADD_ID, **changes))


@pytest.mark.parametrize(
    ("body", "embed"),
    [
        (b"[[2, 3], {}, {}]", Embed()),
        (b"[[2, 3], {}, null]", Embed()),
        (
            b'[[2, 3], {}, {"callbacks": {"task": "a"}, "errbacks": []}]',
            Embed(callbacks=({"task": "a"},), errbacks=()),
        ),
    ],
)
def test_decode_embed_shapes(body: bytes, embed: Embed) -> None:
    assert decode(body, ADD[1], accept=DEFAULT_ACCEPT).embed == embed


def test_decode_minimal_headers() -> None:
    # §2.9: a Celery worker runs a message with only `task` and `id`.
    got = decode(
        ADD[0],
        Properties(content_type="application/json", headers={"task": "tasks.add", "id": "min-a"}),
        accept=DEFAULT_ACCEPT,
    )
    assert got == Message(id="min-a", task="tasks.add", args=(2, 3), priority=None)


def test_decode_keeps_unknown_and_non_default_headers() -> None:
    headers = celery_headers(ADD_ID, replaced_task_nesting=1, stamps={"k": ["v"]}) | {
        "x-custom": "v",
        "hare-attempt": 2,
        "traceparent": "00-ab-cd-01",
    }
    got = decode(ADD[0], props(headers), accept=DEFAULT_ACCEPT)
    assert got.headers == {
        "replaced_task_nesting": 1,
        "stamps": {"k": ["v"]},
        "x-custom": "v",
        "hare-attempt": 2,
        "traceparent": "00-ab-cd-01",
    }
    _, again = encode(got, now=NOW)
    assert dict(again.headers, origin="gen31415@vm") == headers


def test_decode_tolerates_pamqp_shapes() -> None:
    got = decode(
        ADD[0],
        add_with(
            argsrepr=b"(\xff)", origin=None, retries=None, timelimit=(300, 240.5), kwargsrepr=7
        ),
        accept=DEFAULT_ACCEPT,
    )
    assert (got.argsrepr, got.kwargsrepr, got.origin) == ("(\ufffd)", "7", None)
    assert (got.retries, got.timelimit) == (0, (300, 240.5))
    assert decode(ADD[0], add_with(timelimit=None), accept=DEFAULT_ACCEPT).timelimit == (None, None)


def test_decode_protocol_v1() -> None:
    body = json.dumps(
        {
            "task": "tasks.add",
            "id": "v1-id",
            "args": [1, 2],
            "kwargs": {"k": 3},
            "eta": "2030-01-02T03:04:05",
            "expires": None,
            "retries": 2,
            "utc": True,
            "callbacks": [{"task": "cb"}],
            "errbacks": None,
            "taskset": "g1",
            "chord": None,
            "timelimit": [10, 5],
        }
    ).encode()
    properties = Properties(
        content_type="application/json", headers={"x-custom": "v"}, correlation_id="v1-id"
    )
    assert decode(body, properties, accept=DEFAULT_ACCEPT) == Message(
        id="v1-id",
        task="tasks.add",
        args=(1, 2),
        kwargs={"k": 3},
        eta=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        retries=2,
        group="g1",
        timelimit=(10, 5),
        embed=Embed(callbacks=({"task": "cb"},)),
        correlation_id="v1-id",
        priority=None,
        headers={"x-custom": "v"},
    )
    minimal = b'{"task": "t", "id": "i"}'
    got = decode(minimal, Properties(content_type="application/json"), accept=DEFAULT_ACCEPT)
    assert (got.args, got.kwargs, got.embed) == ((), {}, Embed())


# --- decode: every malformed case gives its reason ---------------------------------------------

V2 = ADD[0]
MALFORMED: list[tuple[str, bytes, Properties]] = [
    ("missing-header", V2, props({"id": "i"})),
    ("missing-header", V2, props({"task": "t"})),
    ("missing-header", V2, props({"task": None, "id": "i"})),
    ("missing-header", V2, props({"task": b"\xff", "id": "i"})),
    ("missing-header", V2, props({"task": "t", "id": ""})),
    ("missing-header", V2, props({"task": "t", "id": 5})),
    ("missing-header", b'{"id": "i"}', props({})),
    ("missing-header", b'{"task": "t", "id": null}', props({})),
    ("bad-body", b"[[2, 3], {}]", add_with()),
    ("bad-body", b"[[2, 3], {}, {}, {}]", add_with()),
    ("bad-body", b'{"args": [2, 3]}', add_with()),
    ("bad-body", b"[{}, {}, {}]", add_with()),
    ("bad-body", b'["23", {}, {}]', add_with()),
    ("bad-body", b"[[2, 3], [], {}]", add_with()),
    ("bad-body", b"[[2, 3], {}, []]", add_with()),
    ("bad-body", b'[[2, 3], {}, {"callbacks": "x"}]', add_with()),
    ("bad-body", b'[[2, 3], {}, {"chain": [1]}]', add_with()),
    ("bad-body", b'[[2, 3], {}, {"chord": [{}]}]', add_with()),
    ("bad-body", V2, Properties(content_type=None, headers=celery_headers(ADD_ID))),
    ("bad-body", b'{"task": "t", "id": "i", "args": {}}', props({})),
    ("bad-body", b'{"task": "t", "id": "i", "kwargs": []}', props({})),
    ("bad-body", b'{"task": "t", "id": "i", "retries": "1"}', props({})),
    ("bad-body", b'{"task": "t", "id": "i", "timelimit": 5}', props({})),
    ("bad-body", b'{"task": "t", "id": "i", "chord": []}', props({})),
    ("bad-eta", V2, add_with(eta="tomorrow")),
    ("bad-eta", V2, add_with(eta=1_795_350_000)),
    ("bad-eta", V2, add_with(eta=b"2030-01-02")),
    ("bad-eta", b'{"task": "t", "id": "i", "eta": "soon"}', props({})),
    ("bad-expires", V2, add_with(expires="2030-13-01T00:00:00")),
    ("bad-expires", V2, add_with(expires=["2030-01-01"])),
    ("bad-header", V2, add_with(retries="1")),
    ("bad-header", V2, add_with(retries=-1)),
    ("bad-header", V2, add_with(retries=True)),
    ("bad-header", V2, add_with(timelimit=[1])),
    ("bad-header", V2, add_with(timelimit="300")),
    ("bad-header", V2, add_with(timelimit=[1, "a"])),
    ("bad-header", V2, add_with(timelimit=[-1, None])),
    ("bad-header", V2, add_with(timelimit=[True, None])),
    ("bad-header", V2, add_with(group_index="0")),
    ("bad-header", V2, add_with(group_index=-1)),
    ("bad-header", V2, add_with(ignore_result="yes")),
    ("bad-header", V2, add_with(root_id=5)),
    ("bad-header", V2, add_with(parent_id=b"\xff")),
    ("bad-header", V2, add_with(group=["g"])),
    ("bad-header", V2, add_with(shadow=1)),
    ("undecodable", b"[[2, 3], {}, {", add_with()),
    ("undecodable", b"\xff", add_with()),
]


@pytest.mark.parametrize(("reason", "body", "properties"), MALFORMED)
def test_decode_malformed(reason: str, body: bytes, properties: Properties) -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode(body, properties, accept=DEFAULT_ACCEPT)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_decode_refuses_content_types_outside_accept() -> None:
    body, properties = encode(Message(id="i", task="t"), now=NOW, serializer="pickle")
    with pytest.raises(ContentTypeRefused) as caught:
        decode(body, properties, accept=DEFAULT_ACCEPT)
    assert caught.value.reason == "content-type-refused"


# --- round trip --------------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=40)
optional_ids = st.none() | ids
moments = st.none() | st.datetimes(timezones=OFFSETS)
signatures = st.dictionaries(st.sampled_from(["task", "args", "kwargs", "options"]), json_values)
signature_lists = st.none() | st.lists(signatures, max_size=3).map(tuple)
limits = st.none() | st.integers(0, 10**6) | st.floats(0, 1e6)
header_keys = st.text(min_size=1, max_size=20).filter(
    lambda key: key not in celery_headers("i") or key == "stamps"
)
messages = st.builds(
    Message,
    id=ids,
    task=ids,
    args=st.lists(json_values, max_size=4).map(tuple),
    kwargs=st.dictionaries(st.text(), json_values, max_size=4),
    embed=st.builds(
        Embed,
        callbacks=signature_lists,
        errbacks=signature_lists,
        chain=signature_lists,
        chord=st.none() | signatures,
    ),
    eta=moments,
    expires=moments,
    retries=st.integers(0, 2**40),
    root_id=ids,
    parent_id=optional_ids,
    group=optional_ids,
    group_index=st.none() | st.integers(0, 2**31),
    timelimit=st.tuples(limits, limits),
    shadow=optional_ids,
    argsrepr=st.text(),
    kwargsrepr=st.text(),
    origin=optional_ids,
    ignore_result=st.none() | st.booleans(),
    reply_to=optional_ids,
    correlation_id=ids,
    priority=st.none() | st.integers(0, 255),
    headers=st.dictionaries(
        header_keys, st.none() | st.integers() | st.text() | st.lists(st.integers()), max_size=3
    ),
)


@given(messages, st.floats(0, 4e9))
def test_round_trip(message: Message, now: float) -> None:
    body, properties = encode(message, now=now)
    assert decode(body, properties, accept=DEFAULT_ACCEPT) == message


@given(messages)
def test_round_trip_with_derived_fields(message: Message) -> None:
    bare = replace(message, root_id=None, correlation_id=None, argsrepr=None, kwargsrepr=None)
    back = decode(*encode(bare, now=NOW), accept=DEFAULT_ACCEPT)
    assert (back.root_id, back.correlation_id) == (message.id, message.id)
    assert back.argsrepr is not None and len(back.argsrepr) <= 1024
    assert replace(back, root_id=None, correlation_id=None, argsrepr=None, kwargsrepr=None) == bare


@given(messages)
def test_round_trip_pickle(message: Message) -> None:
    accept = accepted_content_types(["pickle"])
    pickled = replace(message, content_type="application/x-python-serialize")
    assert decode(*encode(pickled, now=NOW), accept=accept) == pickled
