"""Backoff: the formulas, their bounds (property tests) and validation."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_http.backoff import Backoff

bases = st.floats(min_value=1e-3, max_value=10.0)
multipliers = st.floats(min_value=1.0, max_value=10.0)
cap_factors = st.floats(min_value=1.0, max_value=1000.0)
retries = st.integers(min_value=0, max_value=5000)
units = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
jitters = st.sampled_from(["full", "equal", "decorrelated", "none"])


def _const(x: float):  # a random source that always returns x
    return lambda: x


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bases, multipliers, cap_factors, retries, units, jitters)
def test_every_delay_is_between_zero_and_cap(
    base: float, mult: float, factor: float, n: int, u: float, jitter: str
) -> None:
    b = Backoff(base, multiplier=mult, cap=base * factor, jitter=jitter, random=_const(u))  # type: ignore[arg-type]
    d = b.delay(n)
    assert 0.0 <= d <= b.cap


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bases, multipliers, cap_factors, retries)
def test_ceiling_is_min_of_cap_and_exponential(
    base: float, mult: float, factor: float, n: int
) -> None:
    b = Backoff(base, multiplier=mult, cap=base * factor, jitter="none")
    try:
        expected = min(b.cap, base * mult**n)
    except OverflowError:
        expected = b.cap
    assert b.delay(n) == pytest.approx(expected, rel=1e-9)
    assert b.ceiling(n) <= b.ceiling(n + 1) or b.ceiling(n + 1) == pytest.approx(b.ceiling(n))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bases, multipliers, cap_factors, retries, units)
def test_full_jitter_is_uniform_below_the_ceiling(
    base: float, mult: float, factor: float, n: int, u: float
) -> None:
    b = Backoff(base, multiplier=mult, cap=base * factor, random=_const(u))
    assert b.delay(n) == pytest.approx(u * b.ceiling(n), rel=1e-9, abs=1e-12)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bases, multipliers, cap_factors, retries, units)
def test_equal_jitter_keeps_half_the_ceiling(
    base: float, mult: float, factor: float, n: int, u: float
) -> None:
    b = Backoff(base, multiplier=mult, cap=base * factor, jitter="equal", random=_const(u))
    c = b.ceiling(n)
    assert c / 2 - 1e-12 <= b.delay(n) <= c + 1e-12


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bases, cap_factors, st.floats(min_value=0.0, max_value=1e6), units)
def test_decorrelated_stays_between_base_and_three_times_previous(
    base: float, factor: float, prev: float, u: float
) -> None:
    b = Backoff(base, cap=base * factor, jitter="decorrelated", random=_const(u))
    d = b.delay(3, prev)
    assert base - 1e-12 <= d <= b.cap + 1e-12
    if prev > base:
        assert d <= max(base, 3 * prev) + 1e-9


def test_growth_on_average_doubles_until_the_cap() -> None:
    rng = random.Random(7)
    b = Backoff(1.0, multiplier=2.0, cap=16.0, random=rng.random)
    means = [sum(b.delay(n) for _ in range(4000)) / 4000 for n in range(7)]
    # full jitter: mean = ceiling / 2 = 0.5, 1, 2, 4, 8, 8, 8
    for got, want in zip(means, [0.5, 1, 2, 4, 8, 8, 8], strict=True):
        assert got == pytest.approx(want, rel=0.06)


def test_equal_jitter_mean_is_three_quarters_of_the_ceiling() -> None:
    rng = random.Random(3)
    b = Backoff(1.0, cap=100.0, jitter="equal", random=rng.random)
    mean = sum(b.delay(2) for _ in range(4000)) / 4000
    assert mean == pytest.approx(3.0, rel=0.05)


def test_decorrelated_sequence_grows_from_previous() -> None:
    b = Backoff(1.0, cap=100.0, jitter="decorrelated", random=_const(0.999999))
    d, seen = None, []
    for n in range(6):
        d = b.delay(n, d)
        seen.append(round(d, 3))
    assert seen == [3.0, 9.0, 27.0, 81.0, 100.0, 100.0]


def test_none_sequence_is_exact() -> None:
    assert [Backoff(0.5, jitter="none").delay(n) for n in range(6)] == [0.5, 1, 2, 4, 8, 10]


def test_multiplier_one_is_constant() -> None:
    b = Backoff(2, multiplier=1, cap=5, jitter="none")
    assert [b.delay(n) for n in (0, 1, 10, 10**9)] == [2, 2, 2, 2]


def test_huge_retry_numbers_do_not_overflow() -> None:
    b = Backoff(1, multiplier=10, cap=60, jitter="none")
    assert b.delay(10**6) == 60


def test_timedelta_durations() -> None:
    b = Backoff(timedelta(milliseconds=200), cap=timedelta(seconds=3))
    assert (b.base, b.cap) == (0.2, 3.0)


def test_seeded_random_is_reproducible() -> None:
    a = Backoff(random=random.Random(1).random)
    b = Backoff(random=random.Random(1).random)
    assert [a.delay(n) for n in range(5)] == [b.delay(n) for n in range(5)]


def test_defaults() -> None:
    b = Backoff()
    assert (b.base, b.multiplier, b.cap, b.jitter) == (0.1, 2.0, 10.0, "full")
    assert repr(b) == "Backoff(0.1, multiplier=2, cap=10, jitter='full')"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"base": 0}, ValueError, "base must be > 0"),
        ({"base": -1}, ValueError, "base"),
        ({"base": float("nan")}, ValueError, "base must be a finite"),
        ({"base": "1"}, TypeError, "base must be a number"),
        ({"cap": float("inf")}, ValueError, "cap must be a finite"),
        ({"base": 2, "cap": 1}, ValueError, "cap must be >= base"),
        ({"multiplier": 0.5}, ValueError, "multiplier must be a finite number >= 1"),
        ({"multiplier": float("inf")}, ValueError, "multiplier"),
        ({"multiplier": True}, TypeError, "multiplier must be a number"),
        ({"jitter": "random"}, ValueError, "jitter must be one of"),
        ({"random": 3}, TypeError, "random must be a callable"),
    ],
)
def test_validation(kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        Backoff(**kwargs)


def test_a_misbehaving_random_source_is_clamped() -> None:
    assert Backoff(1, cap=4, random=_const(7.0)).delay(1) == 2.0
    assert Backoff(1, cap=4, random=_const(float("nan"))).delay(1) == 0.0
