"""Priorities: the valid values, the band a priority travels in, what a worker consumes."""

from __future__ import annotations

import pytest

from hare.core import calls
from hare.core.priority import (
    InvalidPriority,
    admission_ranks,
    band_queue,
    band_queues,
    check_priority,
    consumed_queues,
)
from hare.core.settings import Settings
from hare.core.topology import work_queue
from hare.errors import ConfigurationError
from hare.task import TaskOptions

ENV = calls.Env(new_id=lambda: "id", now=0.0, origin=None)


@pytest.mark.parametrize("value", [-1, 10, 255, 1.0, "5", True, [5]])
def test_a_priority_outside_0_to_9_or_not_an_int_is_refused_by_name(value: object) -> None:
    with pytest.raises(InvalidPriority, match="task t: priority must be an int from 0"):
        calls.build_message("t", (), {}, {"priority": value}, ENV)


def test_priorities_0_to_9_and_none_travel_as_given() -> None:
    for value in [*range(10), None]:
        _, message = calls.build_message("t", (), {}, {"priority": value}, ENV)
        assert message.priority == value


def test_the_app_default_applies_when_a_call_gives_none() -> None:
    env = calls.Env(new_id=lambda: "id", now=0.0, origin=None, default_priority=3)
    assert calls.build_message("t", (), {}, {}, env)[1].priority == 3
    assert calls.build_message("t", (), {}, {"priority": 0}, env)[1].priority == 0


def test_a_workflow_from_the_wire_may_carry_any_amqp_priority() -> None:
    _, message = calls.build_message("t", (), {}, {"priority": 200}, ENV, from_wire=True)
    assert message.priority == 200
    with pytest.raises(InvalidPriority):
        check_priority(256, from_wire=True)


def test_a_task_s_default_priority_is_checked_when_it_is_made() -> None:
    assert TaskOptions.from_keywords("t", {"priority": 7}).priority == 7
    with pytest.raises(InvalidPriority, match="task t"):
        TaskOptions.from_keywords("t", {"priority": 12})


def test_bands_split_at_5_as_rabbitmq_4_quorum_queues_do() -> None:
    assert [band_queue("q", p) for p in (None, 0, 4)] == ["q"] * 3
    assert [band_queue("q", p) for p in (5, 9, 200)] == ["q.high"] * 3


def test_a_message_in_a_band_stays_in_it() -> None:
    # A retry is republished to the queue it came from: a band is not banded again.
    assert band_queue("q.high", 7) == "q.high"
    assert band_queue("q.high", 1) == "q.high"
    assert band_queues("q.high") == ("q.high",)


def test_a_worker_consumes_each_queue_and_its_band_high_first_at_admission() -> None:
    consumed = consumed_queues(["a", "b", "a"], bands=True)
    assert consumed == ("a", "a.high", "b", "b.high")
    assert admission_ranks(consumed, bands=True) == {"a": 0, "a.high": 1, "b": 0, "b.high": 1}
    assert consumed_queues(["a", "b.high"], bands=False) == ("a", "b.high")
    assert consumed_queues(["a", "handler"], bands=True, without={"handler"}) == (
        "a",
        "a.high",
        "handler",
    )
    assert admission_ranks(["a", "b.high"], bands=False) == {"a": 0, "b.high": 0}


def test_bands_are_for_quorum_queues_only() -> None:
    assert Settings().bands
    assert not Settings(priority_bands=False).bands
    assert not Settings(queue_type="classic").bands


def test_queue_max_priority_declares_classic_queues_as_celery_does() -> None:
    settings = Settings(queue_type="classic", queue_max_priority=10)
    assert settings.queue_max_priority == 10
    assert work_queue("q", "classic", max_priority=10).arguments == {"x-max-priority": 10}
    assert work_queue("q", "classic").arguments == {}


@pytest.mark.parametrize("value", [0, 256, "10", 2.5])
def test_a_bad_queue_max_priority_is_refused(value: object) -> None:
    with pytest.raises(InvalidPriority, match="queue_max_priority"):
        Settings(queue_type="classic", queue_max_priority=value)  # type: ignore[arg-type]


def test_queue_max_priority_on_quorum_queues_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="bands"):
        Settings(queue_max_priority=10)


def test_priority_settings_from_the_environment() -> None:
    settings = Settings.resolve(
        {},
        {
            "HARE_DEFAULT_PRIORITY": "4",
            "HARE_PRIORITY_BANDS": "false",
            "HARE_QUEUE_TYPE": "classic",
            "HARE_QUEUE_MAX_PRIORITY": "10",
        },
    )
    assert (settings.default_priority, settings.priority_bands) == (4, False)
    assert settings.queue_max_priority == 10
    with pytest.raises(InvalidPriority):
        Settings.resolve({}, {"HARE_DEFAULT_PRIORITY": "10"})
