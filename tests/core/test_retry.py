"""Retry maths and decisions: pure, with the rng as an argument."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from unittest.mock import ANY

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hare.core.outcome import (
    Failed,
    Outcome,
    Rejected,
    RetryRequested,
    Succeeded,
    mark_retries_exhausted,
    outcome_of,
)
from hare.core.retry import (
    Ack,
    DeadLetterAs,
    RetryAt,
    RetryIn,
    RetryPolicy,
    backoff,
    decide,
    retry_limit,
)
from hare.errors import ConfigurationError


class Fixed:
    """An rng that always answers the same fraction of the range."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


policies = st.builds(
    RetryPolicy,
    max_retries=st.none() | st.integers(min_value=0, max_value=50),
    default_retry_delay=st.floats(min_value=0, max_value=1e6),
    retry_backoff=st.booleans() | st.floats(min_value=0.001, max_value=1e4),
    retry_backoff_max=st.floats(min_value=0, max_value=1e7),
    retry_jitter=st.booleans(),
)


@given(
    policy=policies,
    retries=st.integers(min_value=0, max_value=10_000),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_backoff_stays_within_bounds(policy: RetryPolicy, retries: int, fraction: float) -> None:
    delay = backoff(policy, retries, Fixed(fraction))
    assert delay >= 0
    if policy.retry_backoff is False:
        assert delay == policy.default_retry_delay
    else:
        assert delay <= policy.retry_backoff_max


@given(policy=policies, retries=st.integers(min_value=0, max_value=2000))
def test_backoff_without_jitter_never_shrinks(policy: RetryPolicy, retries: int) -> None:
    steady = RetryPolicy(
        retry_backoff=policy.retry_backoff,
        retry_backoff_max=policy.retry_backoff_max,
        retry_jitter=False,
    )
    rng = random.Random(0)
    assert backoff(steady, retries + 1, rng) >= backoff(steady, retries, rng)


def test_backoff_matches_celery_formula() -> None:
    policy = RetryPolicy(retry_backoff=2.0, retry_backoff_max=600, retry_jitter=False)
    assert [backoff(policy, n, Fixed(0)) for n in range(10)] == [
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        600,
    ]
    jittered = RetryPolicy(retry_backoff=True, retry_jitter=True)
    assert backoff(jittered, 4, Fixed(0.5)) == 8.0  # full jitter: uniform over [0, 16]


@given(
    policy=policies,
    retries=st.integers(min_value=0, max_value=100),
    asked=st.none() | st.floats(min_value=0, max_value=1e5),
)
def test_never_a_retry_past_max_retries(
    policy: RetryPolicy, retries: int, asked: float | None
) -> None:
    autoretrying = RetryPolicy(
        max_retries=policy.max_retries,
        retry_backoff=policy.retry_backoff,
        autoretry_for=(ValueError,),
    )
    outcomes: list[Outcome] = [Failed(ValueError("x"), "tb"), RetryRequested(countdown=asked)]
    for outcome in outcomes:
        decision = decide(outcome, autoretrying, retries, Fixed(0.5))
        if autoretrying.max_retries is not None and retries >= autoretrying.max_retries:
            assert decision == DeadLetterAs("retries-exhausted")
        else:
            assert isinstance(decision, RetryIn)


def test_decisions_table() -> None:
    policy = RetryPolicy(
        max_retries=2,
        default_retry_delay=10,
        autoretry_for=(OSError,),
        dont_autoretry_for=(FileNotFoundError,),
    )
    rng = Fixed(0)
    assert decide(Succeeded(1), policy, 0, rng) == Ack()
    assert decide(Rejected("no"), policy, 0, rng) == DeadLetterAs("rejected")
    assert decide(Failed(KeyError("k"), ""), policy, 0, rng) == DeadLetterAs("failed")
    assert decide(Failed(OSError("net"), ""), policy, 0, rng) == RetryIn(10)
    assert decide(Failed(OSError("net"), ""), policy, 2, rng) == DeadLetterAs("retries-exhausted")
    assert decide(Failed(FileNotFoundError(), ""), policy, 0, rng) == DeadLetterAs("failed")
    assert decide(RetryRequested(countdown=3), policy, 1, rng) == RetryIn(3)
    assert decide(RetryRequested(), policy, 1, rng) == RetryIn(10)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert decide(RetryRequested(eta=when), policy, 0, rng) == RetryAt(when)
    # a per-call max_retries overrides the policy's, as self.retry(max_retries=) does
    assert decide(RetryRequested(max_retries=5), policy, 4, rng) == RetryIn(10)
    assert decide(RetryRequested(max_retries=5), policy, 5, rng) == (
        DeadLetterAs("retries-exhausted")
    )
    forever = RetryPolicy(max_retries=None, autoretry_for=(OSError,))
    assert isinstance(decide(Failed(OSError(), ""), forever, 10_000, rng), RetryIn)


def test_a_failure_marked_as_the_end_of_its_retries_is_retries_exhausted() -> None:
    """hare_compat's `self.retry` past max_retries raises the task's exception (or
    MaxRetriesExceededError), marked: dead-lettered with the reason a `Retry` past
    max_retries gets, whatever the policy says; the mark rides on that exception only."""
    policy = RetryPolicy(max_retries=None, autoretry_for=(OSError,))
    rng = Fixed(0)
    marked = mark_retries_exhausted(OSError("net"))
    outcome = outcome_of(marked, "tb")
    assert outcome == Failed(marked, "tb", retries_exhausted=True)
    assert decide(outcome, policy, 0, rng) == DeadLetterAs("retries-exhausted")
    assert outcome_of(OSError("net"), "tb") == Failed(ANY, "tb", retries_exhausted=False)
    assert decide(outcome_of(KeyError("k"), ""), policy, 0, rng) == DeadLetterAs("failed")


def test_the_retry_limit_is_the_retrys_own_else_the_policys() -> None:
    policy = RetryPolicy(max_retries=4)
    assert retry_limit(RetryRequested(max_retries=2), policy) == 2
    assert retry_limit(RetryRequested(), policy) == 4
    assert retry_limit(Failed(OSError(), ""), policy) == 4
    assert retry_limit(RetryRequested(), RetryPolicy(max_retries=None)) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"default_retry_delay": -1},
        {"retry_backoff": 0.0},
        {"autoretry_for": ("ValueError",)},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_dead_letter_error_is_final_with_its_own_reason() -> None:
    from hare.errors import DeadLetterError

    exc = DeadLetterError("http-404", "HTTP 404 from POST https://svc/hook")
    outcome = outcome_of(exc, "")
    assert outcome == Rejected("HTTP 404 from POST https://svc/hook", exc, False, "http-404")
    decision = decide(outcome, RetryPolicy(autoretry_for=(Exception,)), 0, Fixed(0.5))
    assert decision == DeadLetterAs("http-404")
