"""The delay ladder's route maths and topology: pure, table cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hare.core import ladder
from hare.errors import DelayTooLong

queue_names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60
).filter(lambda s: not s.startswith("amq."))


def hop_ttls(route: ladder.LadderRoute) -> list[int]:
    return [ladder.level_ttl_ms(level) for level in route.levels]


@given(units=st.integers(min_value=1, max_value=ladder.MAX_UNITS), queue=queue_names)
def test_hop_ttls_sum_to_the_delay_at_unit_resolution(units: int, queue: str) -> None:
    route = ladder.route(units * ladder.UNIT_MS / 1000, queue)
    assert route is not None
    assert route.units == units
    assert sum(hop_ttls(route)) == units * ladder.UNIT_MS


@given(units=st.integers(min_value=1, max_value=ladder.MAX_UNITS), queue=queue_names)
def test_hops_are_the_set_bits_and_start_at_the_highest(units: int, queue: str) -> None:
    route = ladder.route(units / 10, queue)
    assert route is not None
    assert len(route.levels) == bin(units).count("1")
    assert route.exchange == ladder.level_name(route.levels[0])
    # every hop strictly shrinks what remains
    assert list(route.levels) == sorted(route.levels, reverse=True)


@given(seconds=st.floats(min_value=0, max_value=ladder.MAX_DELAY_SECONDS), queue=queue_names)
def test_remainder_after_the_ladder_is_below_one_unit(seconds: float, queue: str) -> None:
    route = ladder.route(seconds, queue)
    carried_ms = sum(hop_ttls(route)) if route else 0
    assert 0 <= round(seconds * 1000) - carried_ms < ladder.UNIT_MS


@given(units=st.integers(min_value=1, max_value=ladder.MAX_UNITS), queue=queue_names)
def test_routing_key_is_32_bits_then_the_queue(units: int, queue: str) -> None:
    route = ladder.route(units / 10, queue)
    assert route is not None
    words = route.routing_key.split(".", ladder.LEVELS)
    assert int("".join(words[: ladder.LEVELS]), 2) == units
    assert words[ladder.LEVELS] == queue
    assert len(route.routing_key.encode()) <= 255


@pytest.mark.parametrize(
    ("seconds", "levels"),
    [
        (0.1, (0,)),
        (0.25, (1,)),  # 2 units; the last 50 ms wait in the worker
        (1, (3, 1)),  # 10 units = 8 + 2
        (60, (9, 6, 4, 3)),  # 600 units = 512 + 64 + 16 + 8: 4 hops
        (3600, (15, 11, 10, 7, 5)),  # 36,000 units: 5 hops
    ],
)
def test_known_routes(seconds: float, levels: tuple[int, ...]) -> None:
    route = ladder.route(seconds, "q")
    assert route is not None
    assert route.levels == levels


def test_below_one_unit_needs_no_ladder() -> None:
    assert ladder.route(0, "q") is None
    assert ladder.route(0.099, "q") is None
    assert ladder.route(-5, "q") is None


def test_point_three_seconds_is_three_units_despite_binary_floats() -> None:
    assert ladder.units_for(0.3) == 3


def test_beyond_the_maximum_is_refused_not_truncated() -> None:
    ladder.route(ladder.MAX_DELAY_SECONDS, "q")
    with pytest.raises(DelayTooLong) as caught:
        ladder.route(ladder.MAX_DELAY_SECONDS + 1, "q")
    assert caught.value.maximum == ladder.MAX_DELAY_SECONDS
    assert ladder.MAX_DELAY_SECONDS > 13 * 365 * 24 * 3600  # about 13.6 years


def test_topology_levels_chain_down_to_the_delivery_exchange() -> None:
    exchanges, queues, bindings = ladder.ladder_topology()
    by_name = {q.name: q for q in queues}
    for level in range(ladder.LEVELS):
        args = by_name[ladder.level_name(level)].arguments
        assert args["x-message-ttl"] == 100 * 2**level
        assert args["x-queue-type"] == "quorum"
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"  # at-least-once needs it
        below = ladder.level_name(level - 1) if level else ladder.DELIVER_EXCHANGE
        assert args["x-dead-letter-exchange"] == below
        # no level dead-letters into itself (a RabbitMQ 3.10 bug, research §3.3)
        assert below != ladder.level_name(level)
    # the longest level stays under RabbitMQ's 10-year TTL cap
    assert ladder.level_ttl_ms(ladder.LEVELS - 1) < 315_360_000_000
    for exchange in exchanges:
        if exchange.name != ladder.PARKING_EXCHANGE:
            assert exchange.arguments["alternate-exchange"] == ladder.PARKING_EXCHANGE
    assert len(bindings) == 1 + 2 * ladder.LEVELS


def test_destination_binding_has_exact_arity() -> None:
    binding = ladder.destination_binding("a.b")
    words = binding.routing_key.split(".")
    assert words[: ladder.LEVELS] == ["*"] * ladder.LEVELS
    assert words[ladder.LEVELS :] == ["a", "b"]
    assert "#" not in binding.routing_key


def _topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ's topic matching, for checking the bindings without a broker."""
    p, k = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(match(i + 1, jj) for jj in range(j, len(k) + 1))
        return j < len(k) and (p[i] == "*" or p[i] == k[j]) and match(i + 1, j + 1)

    return match(0, 0)


@given(units=st.integers(min_value=1, max_value=2**16))
def test_queues_b_and_a_dot_b_never_take_each_others_messages(units: int) -> None:
    for target, other in (("b", "a.b"), ("a.b", "b")):
        route = ladder.route(units / 10, target)
        assert route is not None
        assert _topic_matches(ladder.destination_binding(target).routing_key, route.routing_key)
        assert not _topic_matches(ladder.destination_binding(other).routing_key, route.routing_key)


@given(units=st.integers(min_value=1, max_value=ladder.MAX_UNITS))
def test_bindings_walk_a_message_through_exactly_its_levels(units: int) -> None:
    """Simulate the exchanges: the queues visited are the route's levels, then the target."""
    _, _, bindings = ladder.ladder_topology()
    route = ladder.route(units / 10, "target")
    assert route is not None
    visited: list[str] = []
    exchange = route.exchange
    while exchange != ladder.DELIVER_EXCHANGE:
        targets = [
            b
            for b in bindings
            if b.exchange == exchange and _topic_matches(b.routing_key, route.routing_key)
        ]
        assert len(targets) == 1
        if targets[0].to_exchange:
            exchange = targets[0].destination
        else:
            visited.append(targets[0].destination)
            level = int(targets[0].destination.rsplit("L", 1)[1])
            exchange = ladder.level_name(level - 1) if level else ladder.DELIVER_EXCHANGE
    assert visited == [ladder.level_name(level) for level in route.levels]
