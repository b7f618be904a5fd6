"""The Retry-After and rate-limit hint parsers: exact cases, and fuzzing (never raise)."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from resilient_http._retry_after import delay_hint, parse_ratelimit_reset, parse_retry_after

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        ("  7 ", 7.0),
        ("1.5", 1.5),
        (formatdate(NOW + 30, usegmt=True), 30.0),  # IMF-fixdate
        (formatdate(NOW - 30, usegmt=True), 0.0),  # in the past: no wait
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),  # RFC 850
        ("Tue Nov 14 22:15:20 2023", 120.0),  # asctime
        ("", None),
        ("-5", None),
        ("soon", None),
        ("1e3", None),
        ("inf", None),
        ("NaN", None),
        ("12 s", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after(value: str, expected: float | None) -> None:
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_retry_after_none_and_non_str() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after(b"5", NOW) is None  # type: ignore[arg-type]


def test_http_date_is_measured_against_the_servers_date_header() -> None:
    # The server's clock is 1000 s ahead of ours: the wait is still 30 s.
    headers = {"Date": formatdate(NOW + 1000, usegmt=True)}
    value = formatdate(NOW + 1030, usegmt=True)
    assert parse_retry_after(value, NOW, headers) == pytest.approx(30)
    assert parse_retry_after(value, NOW, {"Date": "garbage"}) == pytest.approx(1030)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"RateLimit": '"default";r=0;t=30'}, 30.0),
        ({"RateLimit": "limit=10, remaining=0, reset=5"}, 5.0),
        ({"RateLimit": '"default";r=0'}, None),
        ({"RateLimit-Reset": "12"}, 12.0),
        ({"X-RateLimit-Reset-After": "2.5"}, 2.5),
        ({"X-RateLimit-Reset": str(int(NOW) + 42)}, 42.0),  # epoch seconds (GitHub)
        ({"X-RateLimit-Reset": str(int(NOW * 1000) + 4200)}, 4.2),  # epoch milliseconds
        ({"X-RateLimit-Reset": "9"}, 9.0),  # delta seconds
        ({"X-RateLimit-Reset": str(int(NOW) - 42)}, 0.0),  # in the past
        ({"X-RateLimit-Reset-Requests": "1s", "X-RateLimit-Reset-Tokens": "6m0s"}, 360.0),
        ({"X-RateLimit-Reset-Requests": "20ms"}, 0.02),
        ({"X-RateLimit-Reset-Requests": "1h2m3.5s"}, 3723.5),
        ({"X-RateLimit-Reset-Requests": "later"}, None),
        ({}, None),
    ],
)
def test_ratelimit_reset(headers: dict[str, str], expected: float | None) -> None:
    got = parse_ratelimit_reset(CIMultiDict(headers), NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_delay_hint_prefers_retry_after() -> None:
    h = CIMultiDict({"Retry-After": "3", "RateLimit": '"d";r=0;t=30'})
    assert delay_hint(429, h, NOW) == 3.0


def test_delay_hint_uses_reset_only_on_429_or_an_exhausted_window() -> None:
    reset = {"X-RateLimit-Reset": "30"}
    assert delay_hint(429, CIMultiDict(reset), NOW) == 30.0
    assert delay_hint(503, CIMultiDict(reset), NOW) is None
    assert delay_hint(503, CIMultiDict({**reset, "X-RateLimit-Remaining": "0"}), NOW) == 30.0
    assert delay_hint(503, CIMultiDict({**reset, "X-RateLimit-Remaining": "7"}), NOW) is None
    assert delay_hint(503, CIMultiDict({"RateLimit": '"d";r=0;t=4'}), NOW) == 4.0
    assert delay_hint(503, CIMultiDict({"RateLimit": '"d";r=3;t=4'}), NOW) is None


class _Hostile(dict):  # type: ignore[type-arg]
    def get(self, *a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


def test_hostile_header_mappings_do_not_raise() -> None:
    assert delay_hint(429, _Hostile(), NOW) is None


header_names = st.sampled_from(
    [
        "Retry-After",
        "Date",
        "RateLimit",
        "RateLimit-Reset",
        "RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Reset-After",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset-Requests",
        "X-RateLimit-Reset-Tokens",
    ]
)
numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
dates = st.floats(min_value=-6e10, max_value=2.5e11).map(lambda t: formatdate(t, usegmt=True))
units_ = st.sampled_from(["h", "m", "s", "ms", "us", "ns", "µs", "x", ""])
durations = st.lists(st.tuples(numbers, units_), max_size=4).map(
    lambda parts: "".join(n + u for n, u in parts)
)
structured = st.tuples(st.sampled_from("rt"), numbers, st.sampled_from("rt"), numbers).map(
    lambda p: f'"default";{p[0]}={p[1]};{p[2]}={p[3]}'
)
header_values = st.one_of(st.text(max_size=60), numbers, dates, durations, structured)
nows = st.floats(allow_nan=True, allow_infinity=True)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(header_names, header_values), st.integers(100, 599), nows)
def test_malformed_values_never_raise(headers: dict[str, str], status: int, now: float) -> None:
    h = CIMultiDict(headers)
    got = delay_hint(status, h, now)
    assert got is None or (math.isfinite(got) and got >= 0)
    for fn in (
        lambda: parse_retry_after(headers.get("Retry-After"), now, h),
        lambda: parse_ratelimit_reset(h, now),
    ):
        v = fn()
        assert v is None or v >= 0 or math.isnan(v)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80), st.floats(min_value=0, max_value=4e9))
def test_retry_after_never_raises_and_is_non_negative(value: str, now: float) -> None:
    got = parse_retry_after(value, now)
    assert got is None or (math.isfinite(got) and got >= 0)
