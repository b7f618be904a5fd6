"""Parsing the wait and rate-limit signals servers send: IETF draft fields, X-RateLimit-*,
Retry-After, and the delay hint Retry takes from them. Exact cases, then fuzzing (never raise)."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from resilient_http._ratelimit_headers import (
    Limits,
    delay_hint,
    parse_limits,
    parse_policy,
    parse_ratelimit,
    parse_reset,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # a wall-clock time, epoch seconds: 2023-11-14T22:13:20Z


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
def test_retry_after_forms(value: str, expected: float | None) -> None:
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


@pytest.mark.parametrize("skew", [3600.0, -3600.0, 0.0])
@pytest.mark.parametrize("name", ["X-RateLimit-Reset", "X-Rate-Limit-Reset"])
def test_epoch_reset_is_measured_against_the_servers_date_header(skew: float, name: str) -> None:
    # The server's clock is an hour off ours; its reset is 9 s after its own Date: 9 s, not
    # 0 s (server behind) or 3,609 s (server ahead). Milliseconds too; no Date: our clock.
    server_now = NOW + skew
    for reset in (str(int(server_now + 9)), str(int((server_now + 9) * 1000))):
        h = CIMultiDict({"Date": formatdate(server_now, usegmt=True), name: reset})
        assert parse_limits(h, NOW).reset == pytest.approx(9)
        assert delay_hint(429, h, NOW) == pytest.approx(9)
        assert parse_limits(CIMultiDict({name: reset}), NOW).reset == pytest.approx(
            max(0.0, 9 + skew)
        )
        h["Date"] = "garbage"
        assert parse_limits(h, NOW).reset == pytest.approx(max(0.0, 9 + skew))


def test_where_the_retry_and_ratelimit_parsers_differed_the_stricter_rule_holds() -> None:
    assert parse_retry_after("\u0663", NOW) is None  # ASCII digits only (RFC 5234 DIGIT)
    assert parse_retry_after("3.", NOW) is None
    assert parse_retry_after(str(11 * 365 * 86400), NOW) is None  # over ten years: nonsense
    repeated = CIMultiDict([("Retry-After", "3"), ("Retry-After", "5")])  # a singleton field
    assert delay_hint(503, repeated, NOW) is None
    # RateLimit measures an HTTP-date against the response's Date too, and asctime is GMT.
    h = CIMultiDict(
        {"Date": formatdate(NOW + 1000, usegmt=True), "Retry-After": "Tue Nov 14 22:30:50 2023"}
    )
    assert parse_limits(h, NOW).retry_after == pytest.approx(50)


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
def test_a_429_waits_for_the_reset(headers: dict[str, str], expected: float | None) -> None:
    got = delay_hint(429, CIMultiDict(headers), NOW)
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


HEADER_NAMES = [
    "Date",
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Rate-Limit-Remaining",
    "X-Rate-Limit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Reset-Requests",
    "X-RateLimit-Reset-Tokens",
    "Retry-After",
]
numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
dates = st.floats(min_value=-6e10, max_value=2.5e11).map(lambda t: formatdate(t, usegmt=True))
units_ = st.sampled_from(["h", "m", "s", "ms", "us", "ns", "µs", "x", ""])
durations = st.lists(st.tuples(numbers, units_), max_size=4).map(
    lambda parts: "".join(n + u for n, u in parts)
)
structured = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(['"', ";", ",", "=", "q=", "w=", "r=", "t=", "?1", "\\", " "]),
        st.integers(-(10**15), 10**15).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
    ),
    max_size=12,
).map("".join)
header_values = st.one_of(st.text(max_size=60), numbers, dates, durations, structured)
walls = st.one_of(st.floats(-1e12, 1e12), st.floats(allow_nan=True, allow_infinity=True))


def _sane(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value >= 0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=8),
    st.integers(100, 599),
    walls,
)
def test_arbitrary_values_never_raise(
    pairs: list[tuple[str, str]], status: int, wall: float
) -> None:
    h = CIMultiDict(pairs)
    limits = parse_limits(h, wall)
    for value in (limits.remaining, limits.reset, limits.quota, limits.window, limits.retry_after):
        assert _sane(value)
    if limits.window is not None:
        assert limits.window > 0
    assert _sane(delay_hint(status, h, wall))
    assert _sane(parse_retry_after(h.get("Retry-After"), wall, h))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), walls)
def test_single_parsers_never_raise(value: str, wall: float) -> None:
    assert _sane(parse_retry_after(value, wall))
    assert _sane(parse_reset(value, wall))
    parse_ratelimit(value)
    parse_policy(value)
