"""Parsing the rate-limit signals servers send: IETF draft fields, X-RateLimit-*, Retry-After."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from resilient_http._ratelimit_headers import (
    Limits,
    parse_limits,
    parse_policy,
    parse_ratelimit,
    parse_reset,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # a wall-clock time, epoch seconds


def test_ietf_structured_fields() -> None:
    h = CIMultiDict({"RateLimit-Policy": '"default";q=50;w=1', "RateLimit": '"default";r=7;t=30'})
    assert parse_limits(h, NOW) == Limits(remaining=7, reset=30, quota=50, window=1)
    assert parse_limits(h, NOW).rate == 50.0


def test_ietf_several_items_take_the_most_restrictive() -> None:
    assert parse_policy('"burst";q=100;w=60, "daily";q=1000;w=86400') == (1000, 86400)
    assert parse_policy('"a";q=10;w=1, "b";q=5;w=1') == (5, 1)
    assert parse_ratelimit('"burst";r=50;t=30, "daily";r=3;t=3600') == (3, 3600)
    assert parse_ratelimit('"x";r=0;t=5, "y";r=0;t=60') == (0, 60)  # exhausted: the longest


def test_ietf_older_drafts() -> None:
    assert parse_policy("100;w=60") == (100, 60)
    assert parse_policy('10;w=1;comment="a, b; c", 100;w=60') == (100, 60)
    assert parse_ratelimit("limit=100, remaining=50, reset=30") == (50, 30)
    h = CIMultiDict({"RateLimit-Remaining": "4", "RateLimit-Reset": "12"})
    assert parse_limits(h, NOW) == Limits(remaining=4, reset=12)


def test_github_epoch_reset() -> None:
    h = CIMultiDict(
        {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(NOW) + 42),
        }
    )
    limits = parse_limits(h, NOW)
    assert limits.remaining == 0
    assert limits.reset == pytest.approx(42)
    assert limits.rate is None  # GitHub does not say the window


def test_twitter_spelling_ms_epochs_deltas_and_durations() -> None:
    h = CIMultiDict({"x-rate-limit-remaining": "3", "x-rate-limit-reset": str(int(NOW) + 5)})
    assert parse_limits(h, NOW) == Limits(remaining=3, reset=5)
    assert parse_reset(str(int(NOW * 1000) + 1500), NOW) == pytest.approx(1.5)
    assert parse_reset("17", NOW) == 17
    assert parse_reset("1m30s", NOW) == 90
    assert parse_reset("250ms", NOW) == pytest.approx(0.25)
    assert parse_reset(str(int(NOW) - 100), NOW) == 0.0  # already past
    h = CIMultiDict({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.5"})
    assert parse_limits(h, NOW).reset == 2.5


def test_the_ietf_field_wins_over_the_de_facto_ones() -> None:
    h = CIMultiDict(
        {
            "RateLimit": '"default";r=9;t=1',
            "X-RateLimit-Remaining": "100",
            "X-RateLimit-Reset": str(int(NOW) + 60),
        }
    )
    assert parse_limits(h, NOW) == Limits(remaining=9, reset=1)


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(" 1.5 ", NOW) == 1.5
    assert parse_retry_after(formatdate(NOW + 30, usegmt=True), NOW) == pytest.approx(30)
    assert parse_retry_after(formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    h = CIMultiDict({"Retry-After": "3"})
    assert parse_limits(h, NOW).retry_after == 3
    assert parse_limits(h, NOW, retry_after=False).retry_after is None


@pytest.mark.parametrize(
    "value",
    ["", "-1", "abc", "1e9999", "nan", "inf", "12abc", "1,2", "Wed, 99 Foo 2015", "9" * 400],
)
def test_malformed_values_are_absent(value: str) -> None:
    assert parse_retry_after(value, NOW) is None
    h = CIMultiDict(
        {
            "RateLimit": value,
            "RateLimit-Policy": value,
            "X-RateLimit-Remaining": value,
            "X-RateLimit-Reset": value,
            "Retry-After": value,
        }
    )
    assert not parse_limits(h, NOW)


def test_repeated_fields_are_combined() -> None:
    h = CIMultiDict([("RateLimit", '"a";r=10;t=1'), ("RateLimit", '"b";r=2;t=9')])
    assert parse_limits(h, NOW).remaining == 2


HEADER_NAMES = [
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Rate-Limit-Remaining",
    "X-Rate-Limit-Reset",
    "X-RateLimit-Reset-After",
    "Retry-After",
]
structured = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(['"', ";", ",", "=", "q=", "w=", "r=", "t=", "?1", "\\", " "]),
        st.integers(-(10**15), 10**15).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), structured), max_size=8),
    st.floats(-1e12, 1e12),
)
def test_arbitrary_values_never_raise(pairs: list[tuple[str, str]], wall: float) -> None:
    limits = parse_limits(CIMultiDict(pairs), wall)
    for value in (limits.remaining, limits.reset, limits.quota, limits.window, limits.retry_after):
        assert value is None or (value >= 0 and value == value and value != float("inf"))
    if limits.window is not None:
        assert limits.window > 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.floats(allow_nan=True, allow_infinity=True))
def test_single_parsers_never_raise(value: str, wall: float) -> None:
    parse_retry_after(value, wall)
    parse_reset(value, wall)
    parse_ratelimit(value)
    parse_policy(value)
