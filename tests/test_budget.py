"""RetryBudget: counts, the floor, the sliding window, validation (pure: time is a number)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_http._budget import RetryBudget


def test_ratio_of_recent_requests_without_floor() -> None:
    b = RetryBudget(0.2, min_per_second=0)
    for _ in range(100):
        b.deposit(0.0)
    assert b.available(0.0) == 20
    assert sum(b.withdraw(0.0) for _ in range(50)) == 20
    assert b.available(0.0) == 0


def test_floor_allows_retries_with_no_traffic_and_refills_per_second() -> None:
    b = RetryBudget(0.2, min_per_second=3)
    assert [b.withdraw(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.withdraw(0.2) is False  # 0.6 of a token
    assert b.withdraw(0.34) is True  # 1.02 tokens
    assert b.available(100.0) == 3  # at most one second's worth is saved up


def test_outage_of_1000_requests_stays_near_the_ratio() -> None:
    b = RetryBudget()  # 20 % + 10/s
    calls = 0
    for k in range(1000):
        now = k * 0.001  # 1000 requests in one second, all failing, attempts=4
        b.deposit(now)
        calls += 1
        for _ in range(3):
            if not b.withdraw(now):
                break
            calls += 1
    assert calls / 1000 <= 1.22


def test_a_successful_retry_is_refunded() -> None:
    b = RetryBudget(0.2, min_per_second=0)
    for _ in range(10):
        b.deposit(0.0)
    assert b.withdraw(0.0) and b.withdraw(0.0) and not b.withdraw(0.0)
    b.refund(0.0)
    assert b.withdraw(0.0) and not b.withdraw(0.0)
    for _ in range(5):
        b.refund(0.0)  # never below zero: refunds do not bank credit
    assert b.available(0.0) == 2


def test_flaky_server_is_not_starved_but_an_outage_is_capped() -> None:
    import random

    def run(failure: float) -> tuple[float, float]:
        rng = random.Random(1)
        b = RetryBudget()
        calls = ok = 0
        for k in range(10_000):
            now = k * 0.001
            b.deposit(now)
            for attempt in range(5):
                if attempt and not b.withdraw(now):
                    break
                calls += 1
                if rng.random() >= failure:
                    ok += 1
                    if attempt:
                        b.refund(now)
                    break
        return calls / 10_000, ok / 10_000

    calls, ok = run(0.22)
    assert ok >= 0.999 and calls == pytest.approx(1.28, abs=0.02)
    calls, ok = run(1.0)
    assert calls <= 1.22 and ok == 0


def test_window_slides_old_requests_out() -> None:
    b = RetryBudget(0.5, min_per_second=0, window=10, slots=10)
    for _ in range(10):
        b.deposit(0.0)
    assert b.available(9.9) == 5
    assert b.available(10.0) == 0  # the slot holding them has left the window
    for _ in range(4):
        b.deposit(10.5)
    assert b.available(10.5) == 2


def test_withdrawals_expire_with_the_window_too() -> None:
    b = RetryBudget(1.0, min_per_second=0, window=2, slots=2)
    b.deposit(0.0)
    b.deposit(1.0)
    assert b.withdraw(1.0) and b.withdraw(1.0)
    assert not b.withdraw(1.5)
    b.deposit(2.0)  # slot [0, 1) left: one deposit gone, none of the withdrawals (made at 1.0)
    assert not b.withdraw(2.0)
    b.deposit(3.0)  # slot [1, 2) left with its deposit and both withdrawals
    assert b.available(3.0) == 2


def test_deposits_of_a_slot_expire_with_it_though_counted_lazily() -> None:
    """Deposits in the current slot are only counted (see the module docstring); the window
    must still file them under their own slot when it moves on."""
    b = RetryBudget(1.0, min_per_second=0, window=2, slots=2)
    for _ in range(3):
        b.deposit(0.0)  # slot [0, 1), nothing reads the budget meanwhile
    for _ in range(2):
        b.deposit(1.5)  # slot [1, 2): the three above must stay in [0, 1)
    assert b.available(1.9) == 5
    assert b.available(2.0) == 2  # [0, 1) left the window with its three deposits
    for _ in range(4):
        b.deposit(2.5)
    assert b.withdraw(2.6)  # a withdrawal counts the deposits of the slot it is in
    assert b.available(2.7) == 5
    b.deposit(100.0)  # idle for more than a window: the slot's deposits are dropped
    assert b.available(100.0) == 1


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1.5),
            st.sampled_from(["deposit", "withdraw", "refund", "available"]),
        ),
        max_size=200,
    )
)
def test_counting_deposits_lazily_changes_no_answer(steps: list[tuple[float, str]]) -> None:
    lazy = RetryBudget(0.5, min_per_second=1, window=3, slots=3)
    eager = RetryBudget(0.5, min_per_second=1, window=3, slots=3)
    now = 0.0
    for dt, op in steps:
        now += dt
        if op == "deposit":
            lazy.deposit(now)
            eager.deposit(now)
            eager.available(now)  # folds the deposit into the window at once
        else:
            assert getattr(lazy, op)(now) == getattr(eager, op)(now)
    assert lazy.available(now) == eager.available(now)


def test_long_idle_resets() -> None:
    b = RetryBudget(0.2, min_per_second=0)
    for _ in range(100):
        b.deposit(0.0)
    assert b.available(1e6) == 0


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=5), st.booleans()), min_size=1, max_size=300
    ),
    st.floats(min_value=0, max_value=2),
)
def test_retries_never_exceed_ratio_plus_floor(
    steps: list[tuple[float, bool]], ratio: float
) -> None:
    b = RetryBudget(ratio, min_per_second=2, window=10)
    now, deposits, retries = 0.0, 0, 0
    for dt, is_retry in steps:
        now += dt
        if is_retry:
            retries += b.withdraw(now)
        else:
            b.deposit(now)
            deposits += 1
    # Over the whole run: ratio per request plus the floor's saved second plus its refills.
    assert retries <= ratio * deposits + 2 + 2 * now + 1e-6


def test_timedelta_window() -> None:
    assert RetryBudget(window=timedelta(seconds=30)).window == 30


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ratio": -0.1}, ValueError, "ratio must be between 0 and 100"),
        ({"ratio": float("nan")}, ValueError, "ratio"),
        ({"ratio": "0.2"}, TypeError, "ratio must be a number"),
        ({"min_per_second": -1}, ValueError, "min_per_second must be a finite number >= 0"),
        ({"min_per_second": float("inf")}, ValueError, "min_per_second"),
        ({"min_per_second": None}, TypeError, "min_per_second must be a number"),
        ({"window": 0}, ValueError, "window must be > 0"),
        ({"slots": 0}, ValueError, "slots must be >= 1"),
    ],
)
def test_validation(kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        RetryBudget(**kwargs)


def test_repr() -> None:
    assert repr(RetryBudget()) == "RetryBudget(0.2, min_per_second=10, window=10)"
