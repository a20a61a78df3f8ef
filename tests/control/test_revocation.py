"""Revocation: the expiring set and record format (pure), then the stream reader on the
memory transport with a ManualClock (no sleeping)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence

import pytest

from hare.control.revocation import (
    STREAM,
    RevocationRecord,
    RevokedSet,
    SyncMarker,
    decode_entry,
    encode_marker,
    encode_record,
    revocation_stream,
    signal_name,
    task_ids,
)
from hare.control.revocation_stream import Revocations, publish_revocation
from hare.core.envelope import Envelope, Properties
from hare.errors import (
    BrokerUnavailable,
    ConfigurationError,
    MalformedMessage,
    NotSupportedError,
)
from hare.testing import ManualClock
from hare.transport.memory.transport import MemoryBroker, MemoryTransport

pytestmark = pytest.mark.anyio

# -- the set --------------------------------------------------------------------------------


def test_revoked_until_expiry() -> None:
    revoked = RevokedSet()
    revoked.add("a", expires_at=100.0, now=0.0)
    assert revoked.contains("a", 99.9)
    assert not revoked.contains("a", 100.0)
    assert not revoked.contains("b", 0.0)


def test_purge_drops_expired_ids_only() -> None:
    revoked = RevokedSet()
    revoked.add("a", expires_at=10.0, now=0.0)
    revoked.add("b", expires_at=20.0, now=0.0)
    revoked.add("c", expires_at=30.0, now=0.0)
    assert revoked.purge(20.0) == 2
    assert len(revoked) == 1
    assert revoked.ids(20.0) == ["c"]


def test_a_longer_revocation_extends_and_a_shorter_one_does_not_shorten() -> None:
    revoked = RevokedSet()
    revoked.add("a", expires_at=10.0, now=0.0)
    revoked.add("a", expires_at=50.0, now=1.0)
    revoked.add("a", expires_at=20.0, now=2.0)
    assert revoked.purge(30.0) == 0  # the heap entry for 10.0 is stale: "a" lasts to 50
    assert revoked.contains("a", 49.0)
    assert revoked.purge(50.0) == 1
    assert len(revoked) == 0


def test_add_of_an_expired_revocation_is_a_no_op_and_add_purges() -> None:
    revoked = RevokedSet()
    revoked.add("old", expires_at=5.0, now=0.0)
    revoked.add("late", expires_at=9.0, now=10.0)
    assert len(revoked) == 0
    assert revoked.ids(10.0) == []


def test_ids_keep_first_revoked_order() -> None:
    revoked = RevokedSet()
    for index, task_id in enumerate(["x", "y", "z"]):
        revoked.add(task_id, expires_at=100.0 + index, now=0.0)
    revoked.add("x", expires_at=500.0, now=1.0)
    assert revoked.ids(2.0) == ["x", "y", "z"]


def test_terminate_is_asked_once_per_revocation() -> None:
    revoked = RevokedSet()
    assert not revoked.mark_terminated("a")  # not revoked: nothing to terminate
    revoked.add("a", expires_at=10.0, now=0.0)
    assert revoked.mark_terminated("a")
    assert not revoked.mark_terminated("a")
    revoked.purge(10.0)
    revoked.add("a", expires_at=30.0, now=10.0)  # revoked again after it expired
    assert revoked.mark_terminated("a")
    assert not revoked.stopped("a")
    revoked.mark_stopped("a")
    assert revoked.stopped("a")
    revoked.mark_stopped("never-asked")
    assert not revoked.stopped("never-asked")


# -- records --------------------------------------------------------------------------------


def test_record_round_trip() -> None:
    record = RevocationRecord(
        ids=("a", "b"), terminate=True, signal="SIGKILL", revoked_at=1.5, expires_at=86401.5
    )
    body = encode_record(record)
    assert json.loads(body) == {
        "hare": "revoke",
        "v": 1,
        "ids": ["a", "b"],
        "terminate": True,
        "signal": "SIGKILL",
        "revoked_at": 1.5,
        "expires_at": 86401.5,
    }
    assert decode_entry(body) == record
    assert decode_entry(encode_marker("tok")) == SyncMarker("tok")


@pytest.mark.parametrize(
    "entry",
    [
        {"hare": "revoke", "v": 2, "ids": ["a"]},  # a later version
        {"hare": "purge", "v": 1},  # another kind
        {"v": 1},
    ],
)
def test_entries_of_other_kinds_or_versions_are_skipped(entry: dict[str, object]) -> None:
    assert decode_entry(json.dumps(entry).encode()) is None


GOOD = {"hare": "revoke", "v": 1, "ids": ["a"], "terminate": False, "signal": "SIGTERM"}


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        json.dumps({**GOOD, "revoked_at": 1, "expires_at": 2, "ids": []}).encode(),
        json.dumps({**GOOD, "revoked_at": 1, "expires_at": 2, "ids": [""]}).encode(),
        json.dumps({**GOOD, "revoked_at": 1, "expires_at": "2"}).encode(),
        json.dumps({**GOOD, "revoked_at": 1, "expires_at": True}).encode(),
        json.dumps({**GOOD, "revoked_at": 1, "expires_at": 2, "terminate": 1}).encode(),
        json.dumps({"hare": "sync", "v": 1}).encode(),
    ],
)
def test_malformed_entries_raise(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_entry(body)


def test_task_ids_and_signal_names() -> None:
    assert task_ids("a") == ("a",)
    assert task_ids(["a", "b", "a"]) == ("a", "b")
    for bad in ([], [""], ["a", 3]):
        with pytest.raises(ConfigurationError):
            task_ids(bad)  # type: ignore[arg-type]
    assert [signal_name(s) for s in (None, "TERM", "sigkill", 9, "15")] == [
        "SIGTERM",
        "SIGTERM",
        "SIGKILL",
        "SIGKILL",
        "SIGTERM",
    ]
    with pytest.raises(ConfigurationError):
        signal_name("SIGNOPE")


def test_stream_declaration() -> None:
    stream = revocation_stream()
    assert stream.name == STREAM == "hare.revoked.v1"
    assert (stream.durable, stream.exclusive, stream.auto_delete) == (True, False, False)
    assert stream.arguments["x-queue-type"] == "stream"
    assert stream.arguments["x-max-age"] == "1D"


# -- the stream reader on the memory transport --------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


_OPEN: list[MemoryTransport] = []


@pytest.fixture
async def broker(clock: ManualClock) -> AsyncIterator[MemoryBroker]:
    yield MemoryBroker(clock=clock)
    while _OPEN:  # the connections a test opened with `_connected`
        await _OPEN.pop().close()


async def _connected(broker: MemoryBroker) -> MemoryTransport:
    transport = MemoryTransport(broker)
    await transport.connect()
    _OPEN.append(transport)
    return transport


class Terminations:
    """A worker's terminate callback: records calls, reports `running` ids as stopped."""

    def __init__(self, running: Collection[str] = ()) -> None:
        self.running = set(running)
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, ids: Sequence[str], signal: str) -> list[str]:
        self.calls.append((list(ids), signal))
        return [task_id for task_id in ids if task_id in self.running]


async def test_a_worker_that_starts_later_replays_the_stream(
    broker: MemoryBroker, clock: ManualClock
) -> None:
    client = await _connected(broker)
    await publish_revocation(client, ["a", "b"], clock=clock)
    await publish_revocation(client, ["c"], ttl=60, clock=clock)

    later = Revocations(clock=clock)
    await later.subscribe(await _connected(broker))

    assert later.is_revoked("a") and later.is_revoked("b") and later.is_revoked("c")
    assert not later.is_revoked("d")
    assert later.revoked_ids() == ["a", "b", "c"]


async def test_revocations_expire_by_the_clock(broker: MemoryBroker, clock: ManualClock) -> None:
    client = await _connected(broker)
    await publish_revocation(client, ["short"], ttl=60, clock=clock)
    await publish_revocation(client, ["long"], ttl=3600, clock=clock)
    revocations = Revocations(clock=clock)
    await revocations.subscribe(await _connected(broker))

    await clock.advance_by(59.9)
    assert revocations.is_revoked("short")
    await clock.advance_by(0.1)
    assert not revocations.is_revoked("short")
    assert revocations.revoked_ids() == ["long"]

    await clock.advance_by(3600)
    late = Revocations(clock=clock)  # a worker starting now replays nothing that is still due
    await late.subscribe(await _connected(broker))
    assert late.revoked_ids() == []


async def test_live_revocations_reach_a_running_reader(
    broker: MemoryBroker, clock: ManualClock
) -> None:
    terminations = Terminations(running={"x"})
    revocations = Revocations(clock=clock, terminate=terminations)
    await revocations.subscribe(await _connected(broker))
    client = await _connected(broker)

    await publish_revocation(client, ["x", "y"], terminate=True, signal="SIGKILL", clock=clock)
    await clock.yield_control()

    assert revocations.is_revoked("x") and revocations.is_revoked("y")
    assert terminations.calls == [(["x", "y"], "SIGKILL")]
    # The same revoke again (by broadcast, by the stream): not terminated twice, and what
    # the first one stopped is reported again.
    assert revocations.apply(["x", "y"], terminate=True) == ["x"]
    await publish_revocation(client, ["x"], terminate=True, clock=clock)
    await clock.yield_control()
    assert len(terminations.calls) == 1
    # A new id in a later request is asked on its own.
    assert revocations.apply(["y", "z"], terminate=True) == []
    assert terminations.calls[-1] == (["z"], "SIGTERM")


async def test_a_reconnected_reader_reads_on_from_where_it_was(
    broker: MemoryBroker, clock: ManualClock
) -> None:
    terminations = Terminations()
    revocations = Revocations(clock=clock, terminate=terminations)
    transport = await _connected(broker)
    await revocations.subscribe(transport)
    client = await _connected(broker)
    await publish_revocation(client, ["before"], terminate=True, clock=clock)
    await clock.yield_control()
    await transport.sever()

    await publish_revocation(client, ["while-away"], clock=clock)
    await transport.connect()
    await revocations.subscribe(transport)

    assert revocations.revoked_ids() == ["before", "while-away"]
    assert terminations.calls == [(["before"], "SIGTERM")]  # not replayed from the start


async def test_bad_entries_are_skipped(broker: MemoryBroker, clock: ManualClock) -> None:
    client = await _connected(broker)
    await client.declare_queue(revocation_stream())
    for body in (b"{not json", b'{"hare": "revoke", "v": 1, "ids": []}'):
        await client.publish(
            Envelope(exchange="", routing_key=STREAM, body=body, properties=Properties())
        )
    await publish_revocation(client, ["ok"], clock=clock)

    revocations = Revocations(clock=clock)
    await revocations.subscribe(await _connected(broker))

    assert revocations.revoked_ids() == ["ok"]


async def test_ttl_is_bounded_by_the_streams_retention(
    broker: MemoryBroker, clock: ManualClock
) -> None:
    client = await _connected(broker)
    for ttl in (0, -1, 86_400.5):
        with pytest.raises(ConfigurationError, match="at most 86400"):
            await publish_revocation(client, ["a"], ttl=ttl, clock=clock)


async def test_the_stream_cannot_be_read_with_get(broker: MemoryBroker, clock: ManualClock) -> None:
    client = await _connected(broker)
    await publish_revocation(client, ["a"], clock=clock)
    with pytest.raises(NotSupportedError):
        await client.get(STREAM)


async def test_a_stream_that_is_not_read_in_time_is_reported(
    broker: MemoryBroker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    transport = await _connected(broker)
    publish = transport.publish

    async def drop_markers(envelope: Envelope, *, mandatory: bool = True) -> None:
        if b'"sync"' not in envelope.body:  # the marker never arrives: a stuck stream
            await publish(envelope, mandatory=mandatory)

    monkeypatch.setattr(transport, "publish", drop_markers)
    revocations = Revocations(clock=clock, catch_up_timeout=30)
    subscribing = asyncio.ensure_future(revocations.subscribe(transport))
    await clock.advance_by(29.9)
    assert not subscribing.done()
    await clock.advance_by(0.1)
    with pytest.raises(BrokerUnavailable, match="not read up to now within 30 s"):
        await subscribing
    await transport.close()
