"""Event names, handler patterns and queue names: pure rules, checked against the memory
broker's topic matching (itself checked against RabbitMQ 3.10.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hare.errors import ConfigurationError
from hare.events.errors import InvalidEventName
from hare.events.names import (
    handler_queue_name,
    matches,
    validate_event_name,
    validate_pattern,
)
from hare.transport.memory.topology import topic_matches


@pytest.mark.parametrize("name", ["order.paid", "order", "user-42.signed_up", "a.b.c.d"])
def test_event_names_that_are_topic_words_are_accepted(name: str) -> None:
    assert validate_event_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "order.*", "order.#", "#", "order..paid", ".order", "order.", "order paid", "é.x", 3],
)
def test_bad_event_names_raise_a_named_error(name: object) -> None:
    with pytest.raises(InvalidEventName):
        validate_event_name(name)


def test_an_invalid_event_name_is_a_configuration_error_saying_why() -> None:
    with pytest.raises(ConfigurationError, match="wildcard"):
        validate_event_name("order.*")
    with pytest.raises(InvalidEventName, match="longer than 255"):
        validate_event_name("a" * 256)


@pytest.mark.parametrize("pattern", ["order.*", "order.#", "#", "*.paid", "#.failed.*"])
def test_patterns_take_wildcards_as_whole_words(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["order.p*", "order.#x", "", "order..x"])
def test_bad_patterns_raise(pattern: str) -> None:
    with pytest.raises(InvalidEventName):
        validate_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("order.*", "order.paid", True),
        ("order.*", "order.refunded", True),
        ("order.*", "order.paid.late", False),
        ("order.*", "order", False),
        ("order.#", "order", True),
        ("order.#", "order.paid.late", True),
        ("#", "x", True),
        ("*.paid", "order.paid", True),
        ("#.paid", "a.b.paid", True),
        ("order.paid", "order.paid", True),
        ("order.paid", "order.refunded", False),
    ],
)
def test_matching_is_amqp_topic_matching(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected
    assert topic_matches(pattern, name) is expected


_word = st.sampled_from(["a", "b", "order"])
_names = st.lists(_word, min_size=1, max_size=5).map(".".join)
_patterns = st.lists(st.sampled_from(["a", "b", "*", "#"]), min_size=1, max_size=5).map(".".join)


@given(_patterns, _names)
def test_matching_agrees_with_the_memory_brokers_topic_exchange(pattern: str, name: str) -> None:
    assert matches(pattern, name) == topic_matches(pattern, name)


def test_handler_queue_names_are_derived_from_the_app_and_the_handler() -> None:
    assert handler_queue_name("shop", "billing.on_paid") == "hare.ev.shop.billing.on_paid"
    assert handler_queue_name("", "billing.on_paid") == "hare.ev.app.billing.on_paid"
