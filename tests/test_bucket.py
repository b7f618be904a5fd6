"""The adaptive token bucket and adapt(): how a response's limits change it. Pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_http._bucket import TokenBucket, adapt
from resilient_http._ratelimit_headers import Limits


def drain(bucket: TokenBucket, now: float) -> int:
    n = 0
    while bucket.try_take(now):
        n += 1
    return n


def test_a_new_bucket_holds_its_burst_then_refills_at_the_rate() -> None:
    b = TokenBucket(rate=10.0, burst=5.0, now=0.0, recovery=10.0)
    assert drain(b, 0.0) == 5
    assert not b.try_take(0.05)
    assert b.try_take(0.1)
    assert drain(b, 10.0) == 5  # never more than the capacity, however long idle


def test_wait_for_counts_the_tokens_of_the_waiters_ahead() -> None:
    b = TokenBucket(rate=10.0, burst=1.0, now=0.0, recovery=10.0)
    assert b.wait_for(1, 0.0) == 0.0
    assert b.try_take(0.0)
    assert b.wait_for(1, 0.0) == pytest.approx(0.1)
    assert b.wait_for(3, 0.0) == pytest.approx(0.3)  # two ahead, then us
    assert b.wait_for(1, 0.05) == pytest.approx(0.05)


def test_pause_is_a_debt_that_ends_exactly_when_the_pause_does() -> None:
    b = TokenBucket(rate=10.0, burst=10.0, now=0.0, recovery=10.0)
    assert b.pause(2.0, 0.0)
    assert not b.try_take(1.999)
    assert b.try_take(2.0)
    assert not b.try_take(2.0)
    # a shorter pause does not shorten a longer one
    b.pause(10.0, 3.0)
    assert not b.pause(5.0, 3.0)
    assert b.wait_for(1, 3.0) == pytest.approx(7.0)


def test_limit_rate_lowers_rate_and_capacity_then_recovers_additively() -> None:
    b = TokenBucket(rate=100.0, burst=100.0, now=0.0, recovery=10.0)
    assert b.limit_rate(10.0, 0.0, hold=1.0)
    assert b.rate == 10.0
    assert b.capacity == pytest.approx(10.0)
    assert b.tokens <= 10.0
    assert not b.limit_rate(50.0, 0.0, hold=1.0)  # headers only ever lower the rate
    assert b.rate == 10.0
    b.refill(1.0)  # still held
    assert b.rate == 10.0
    b.refill(2.0)  # one second of recovery: +10/s
    assert b.rate == pytest.approx(20.0)
    b.refill(100.0)
    assert b.rate == 100.0
    assert b.capacity == 100.0


def test_slow_down_halves_once_per_hold() -> None:
    b = TokenBucket(rate=8.0, burst=8.0, now=0.0, recovery=10.0)
    assert b.slow_down(0.5, 0.0, hold=1.0)
    assert not b.slow_down(0.5, 0.5, hold=1.0)
    assert b.rate == 4.0
    assert b.slow_down(0.5, 1.0, hold=1.0)
    assert b.rate == 2.0


def test_cap_tokens_and_give_back() -> None:
    b = TokenBucket(rate=10.0, burst=10.0, now=0.0, recovery=10.0)
    b.cap_tokens(3.0, 0.0)
    assert drain(b, 0.0) == 3
    b.give_back(0.0)
    assert b.try_take(0.0)
    b.cap_tokens(-5.0, 0.0)  # never below zero from a header
    assert b.tokens == 0.0


def test_idle_means_indistinguishable_from_new() -> None:
    b = TokenBucket(rate=10.0, burst=10.0, now=0.0, recovery=1.0)
    assert b.is_idle(0.0)
    b.try_take(0.0)
    assert not b.is_idle(0.0)
    assert b.is_idle(1.0)
    b.limit_rate(1.0, 1.0, hold=1.0)
    assert not b.is_idle(1.5)
    assert b.is_idle(10.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1000.0),
    burst=st.floats(1.0, 100.0),
    steps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: float, steps: list[float]
) -> None:
    """For any schedule of attempts: tokens handed out within [0, t] <= burst + rate * t."""
    b = TokenBucket(rate=rate, burst=burst, now=0.0, recovery=10.0)
    now = 0.0
    taken = 0
    for step in steps:
        now += step
        taken += drain(b, now)
        assert taken <= math.floor(burst + rate * now + 1e-6) + 1e-9
        assert b.tokens <= b.capacity + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 500.0),
    actions=st.lists(
        st.tuples(
            st.sampled_from(["take", "pause", "limit", "slow", "cap", "give"]),
            st.floats(0.0, 2.0),
            st.floats(0.001, 1000.0),
        ),
        max_size=60,
    ),
)
def test_adaptation_keeps_the_bucket_sane(
    rate: float, actions: list[tuple[str, float, float]]
) -> None:
    """Whatever the server says, the rate stays in (0, base] and tokens <= capacity."""
    b = TokenBucket(rate=rate, burst=max(1.0, rate), now=0.0, recovery=5.0)
    now = 0.0
    for action, dt, x in actions:
        now += dt
        if action == "take":
            b.try_take(now)
        elif action == "pause":
            b.pause(now + min(x, 60.0), now)
        elif action == "limit":
            b.limit_rate(x, now, hold=1.0)
        elif action == "slow":
            b.slow_down(0.5, now, hold=1.0)
        elif action == "cap":
            b.cap_tokens(x - 10, now)
        else:
            b.give_back(now)
        assert 0 < b.rate <= b.base
        assert 1.0 <= b.capacity <= b.burst + 1e-9
        assert b.tokens <= b.capacity + 1e-9
        assert math.isfinite(b.wait_for(1, now))


def test_the_rate_is_never_lowered_below_its_floor() -> None:
    b = TokenBucket(rate=100.0, burst=100.0, now=0.0, recovery=10.0, min_rate=1 / 60)
    b.limit_rate(1 / 86400, 0.0, hold=1.0)  # "one request a day"
    assert b.rate == pytest.approx(1 / 60)
    for _ in range(20):
        b.slow_down(0.5, b.hold_until, hold=1.0)
    assert b.rate == pytest.approx(1 / 60)


def bucket100() -> TokenBucket:
    return TokenBucket(rate=100.0, burst=100.0, now=0.0, recovery=10.0, min_rate=1 / 60)


def test_adapt_to_a_declared_policy() -> None:
    b = bucket100()
    assert adapt(b, Limits(quota=10, window=1, remaining=8, reset=1), 200, 0.0, 0, 60) == (
        "policy",
        0.0,
    )
    assert b.rate == 10 and b.capacity == 10 and b.tokens == 8
    # the same policy again: no change, no reason
    assert adapt(b, Limits(quota=10, window=1), 200, 0.0, 0, 60) == ("", 0.0)


def test_adapt_counts_requests_in_flight_against_the_remaining_quota() -> None:
    b = bucket100()
    adapt(b, Limits(remaining=5, reset=0.05), 200, 0.0, in_flight=3, max_pause=60)
    assert b.tokens == 2
    assert b.rate == 100  # remaining / reset = 100/s: no slower than now
    adapt(b, Limits(remaining=5, reset=10), 200, 0.0, in_flight=0, max_pause=60)
    assert b.rate == pytest.approx(0.5)  # no policy: remaining / reset spreads the quota
    assert b.capacity == 1 and b.tokens == 1  # the burst shrinks with the rate


def test_adapt_exhausted_quota_pauses_until_the_reset() -> None:
    b = bucket100()
    assert adapt(b, Limits(remaining=0, reset=7), 200, 0.0, 0, 60) == ("exhausted", 7.0)
    assert b.wait_for(1, 0.0) == pytest.approx(7.0)
    # with a declared rate that refills sooner than the reset, no pause: just no token
    b = bucket100()
    reason, pause = adapt(b, Limits(remaining=0, reset=1, quota=50, window=1), 200, 0.0, 0, 60)
    assert (reason, pause) == ("policy", 0.0)
    assert b.wait_for(1, 0.0) == pytest.approx(1 / 50)


def test_adapt_429_and_retry_after() -> None:
    b = bucket100()
    assert adapt(b, Limits(retry_after=2), 429, 0.0, 0, 60) == ("429+retry-after", 2.0)
    assert b.rate == 50
    assert b.wait_for(1, 0.0) == pytest.approx(2.0)
    b = bucket100()
    assert adapt(b, Limits(retry_after=2), 503, 0.0, 0, 60) == ("retry-after", 2.0)
    assert b.rate == 100  # a 503 pauses but does not slow down
    b = bucket100()
    assert adapt(b, Limits(retry_after=2), 200, 0.0, 0, 60) == ("", 0.0)  # not on a success
    b = bucket100()
    assert adapt(b, Limits(retry_after=3600), 429, 0.0, 0, 60)[1] == 60.0  # capped
    assert adapt(b, Limits(), 200, 0.0, 0, 60) == ("", 0.0)
