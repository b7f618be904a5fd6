"""The pure RFC 9111 rules: parsing, storability, freshness, age, revalidation, invalidation."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from resilient_http._rfc9111 import (
    Entry,
    Fresh,
    NotModified,
    Policy,
    RequestFacts,
    Revalidate,
    ServeStale,
    can_store,
    current_age,
    decide,
    etag_matches,
    invalidated_urls,
    make_entry,
    parse_cache_control,
    parse_delta,
    parse_http_date,
    refreshed,
    stale_on_error,
    stored_headers,
    vary_names,
)

WALL = 1_700_000_000.0  # the wall-clock time of the responses below
DATE = formatdate(WALL, usegmt=True)
GET = RequestFacts()
PRIVATE = Policy()
SHARED = Policy(shared=True)


def entry(
    headers: tuple[tuple[str, str], ...] = (),
    *,
    policy: Policy = PRIVATE,
    status: int = 200,
    request_time: float = 100.0,
    response_time: float = 100.0,
    wall: float = WALL,
    date: bool = True,
) -> Entry:
    if date:
        headers = (("Date", DATE), *headers)
    return make_entry(
        policy, GET, status=status, reason="OK", headers=headers, body=b"body", vary=(),
        request_time=request_time, response_time=response_time, wall=wall,
    )


# --------------------------------------------------------------------------- parsing


def test_cache_control_parsing() -> None:
    assert parse_cache_control(None) == {}
    assert parse_cache_control('Max-Age=60, no-cache="Set-Cookie, X", private') == {
        "max-age": "60",
        "no-cache": "Set-Cookie, X",
        "private": None,
    }
    assert parse_cache_control("max-age=1, max-age=99") == {"max-age": "1"}  # first wins
    assert parse_cache_control(" , ,public") == {"public": None}


@given(st.dictionaries(st.from_regex(r"[a-z][a-z-]{0,10}", fullmatch=True),
                       st.one_of(st.none(), st.from_regex(r"[0-9a-z]{1,8}", fullmatch=True))))
def test_cache_control_round_trip(directives: dict[str, str | None]) -> None:
    text = ", ".join(k if v is None else f"{k}={v}" for k, v in directives.items())
    assert parse_cache_control(text) == directives


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("60", 60), (" 7 ", 7), ("-1", None), ("1.5", None), ("", None), (None, None),
     ("abc", None), ("99999999999999", 2**31), ("١٢", None), ("9" * 5000, 2**31),
     ("0" * 5000 + "12", 12), ("2147483648", 2**31), ("2147483647", 2**31 - 1)],
)
def test_delta_seconds(raw: str | None, expected: int | None) -> None:
    assert parse_delta(raw) == expected


@given(st.integers(min_value=0, max_value=2**40))
def test_delta_seconds_any_integer(n: int) -> None:
    assert parse_delta(str(n)) == min(n, 2**31)


def test_http_dates_all_three_formats() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777.0
    assert parse_http_date("0") is None
    assert parse_http_date("") is None
    assert parse_http_date(None) is None


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_http_date_round_trip(t: int) -> None:
    assert parse_http_date(formatdate(t, usegmt=True)) == t


def test_hop_by_hop_and_connection_listed_fields_are_not_stored() -> None:
    kept = stored_headers(
        (
            ("Connection", "X-Secret, close"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "a=b"),
            ("Age", "10"),
            ("ETag", '"x"'),
            ("Content-Type", "text/plain"),
        )
    )
    assert kept == (("Set-Cookie", "a=b"), ("ETag", '"x"'), ("Content-Type", "text/plain"))


def test_set_cookie_private_cache_stores_it_shared_cache_does_not() -> None:
    headers = (("Cache-Control", "max-age=60"), ("Set-Cookie", "sid=1"))
    assert can_store(PRIVATE, GET, 200, headers) is None
    assert ("Set-Cookie", "sid=1") in entry(headers).headers
    assert can_store(SHARED, GET, 200, headers) == "Set-Cookie in a shared cache"
    assert stored_headers(headers, shared=True) == (("Cache-Control", "max-age=60"),)


def test_a_shared_cache_ignoring_headers_still_keeps_clients_apart() -> None:
    ttl_only = Policy(shared=True, respect_headers=False)
    assert can_store(ttl_only, GET, 200, (("Set-Cookie", "sid=1"),)) == (
        "Set-Cookie in a shared cache"
    )
    authorized = RequestFacts(authorization=True)
    assert can_store(ttl_only, authorized, 200, ()) is not None
    assert can_store(ttl_only, GET, 200, ()) is None
    assert can_store(Policy(respect_headers=False), authorized, 200, ()) is None  # private


@pytest.mark.parametrize("field", ["max-age", "s-maxage", "stale-if-error",
                                   "stale-while-revalidate"])
def test_huge_delta_seconds_in_a_response_are_2_to_the_31(field: str) -> None:
    huge = "9" * 5000
    e = entry((("Cache-Control", f"{field}={huge}"), ("Age", huge)), policy=SHARED)
    assert e.initial_age >= 2**31
    request = RequestFacts(cache_control=f"max-age={huge}, min-fresh={huge}, max-stale={huge}")
    assert isinstance(decide(SHARED, e, request, 100.0), (Fresh, Revalidate))


def test_vary() -> None:
    assert vary_names(()) == ()
    assert vary_names((("Vary", "Accept, accept-encoding"), ("Vary", "Accept"))) == (
        "accept",
        "accept-encoding",
    )
    assert vary_names((("Vary", "Accept, *"),)) is None


def test_etag_weak_comparison() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", W/"a"', 'W/"a"')
    assert not etag_matches('"b"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches("*", None)
    assert not etag_matches('"a"', None)


# --------------------------------------------------------------------------- storing


@pytest.mark.parametrize(
    ("policy", "request_facts", "status", "headers", "reason"),
    [
        (PRIVATE, GET, 200, (), None),
        (PRIVATE, GET, 200, (("Cache-Control", "no-store"),), "no-store"),
        (PRIVATE, RequestFacts(cache_control="no-store"), 200, (), "request no-store"),
        (PRIVATE, GET, 206, (("Cache-Control", "max-age=9"),), "status 206"),
        (PRIVATE, GET, 304, (), "status 304"),
        (PRIVATE, GET, 500, (), "status 500 without explicit freshness"),
        (PRIVATE, GET, 500, (("Cache-Control", "max-age=9"),), None),
        (PRIVATE, GET, 404, (), None),
        (PRIVATE, GET, 200, (("Vary", "*"),), "Vary: *"),
        (PRIVATE, RequestFacts(method="POST"), 200, (), "method POST"),
        (PRIVATE, GET, 200, (("Cache-Control", "private"),), None),
        (SHARED, GET, 200, (("Cache-Control", "private"),), "private"),
        (SHARED, GET, 200, (("Cache-Control", 'private="X"'),), "private"),
        (SHARED, RequestFacts(authorization=True), 200, (),
         "Authorization without public, s-maxage or must-revalidate"),
        (SHARED, RequestFacts(authorization=True), 200, (("Cache-Control", "public"),), None),
        (SHARED, RequestFacts(authorization=True), 200, (("Cache-Control", "s-maxage=5"),), None),
        (SHARED, RequestFacts(authorization=True), 200,
         (("Cache-Control", "must-revalidate, max-age=5"),), None),
        (PRIVATE, RequestFacts(authorization=True), 200, (), None),
        # must-understand: a known status overrides no-store; an unknown one is never stored
        (PRIVATE, GET, 200, (("Cache-Control", "must-understand, no-store, max-age=9"),), None),
        (PRIVATE, GET, 299, (("Cache-Control", "must-understand, no-store, max-age=9"),),
         "must-understand and status 299 unknown"),
        (PRIVATE, GET, 299, (("Cache-Control", "max-age=9"),), None),
        (Policy(respect_headers=False), GET, 200, (("Cache-Control", "no-store"),), None),
        (Policy(respect_headers=False), GET, 500, (("Cache-Control", "max-age=9"),),
         "status 500 without headers"),
    ],
)
def test_can_store(
    policy: Policy,
    request_facts: RequestFacts,
    status: int,
    headers: tuple[tuple[str, str], ...],
    reason: str | None,
) -> None:
    assert can_store(policy, request_facts, status, headers) == reason


# --------------------------------------------------------------------------- freshness


def test_max_age_is_the_lifetime() -> None:
    e = entry((("Cache-Control", "max-age=10"),))
    assert e.lifetime == 10
    assert isinstance(decide(PRIVATE, e, GET, 109.9), Fresh)
    assert isinstance(decide(PRIVATE, e, GET, 110.0), Revalidate)


def test_s_maxage_only_in_a_shared_cache() -> None:
    headers = (("Cache-Control", "max-age=10, s-maxage=100"),)
    assert entry(headers).lifetime == 10
    shared = entry(headers, policy=SHARED)
    assert shared.lifetime == 100
    assert shared.must_revalidate  # s-maxage implies proxy-revalidate


def test_expires_minus_date() -> None:
    expires = formatdate(WALL + 30, usegmt=True)
    assert entry((("Expires", expires),)).lifetime == 30
    assert entry((("Expires", "0"),)).lifetime == 0  # invalid: already expired
    assert entry((("Expires", expires), ("Cache-Control", "max-age=5"))).lifetime == 5


def test_ttl_is_the_lifetime_without_freshness_information() -> None:
    assert entry(()).lifetime == 60
    assert entry((), policy=Policy(ttl=0)).lifetime == 0
    assert entry((), status=302).lifetime == 0  # not heuristically cacheable


def test_respect_headers_false_is_a_pure_ttl() -> None:
    policy = Policy(ttl=5, respect_headers=False)
    e = entry((("Cache-Control", "no-cache, max-age=999"), ("Age", "abc")), policy=policy)
    assert (e.lifetime, e.no_cache, e.initial_age) == (5, False, 0)
    assert isinstance(decide(policy, e, RequestFacts(cache_control="no-cache"), 104), Fresh)
    assert isinstance(decide(policy, e, GET, 105), Revalidate)


def test_received_age_is_subtracted_from_the_lifetime() -> None:
    e = entry((("Cache-Control", "max-age=100"), ("Age", "30")))
    assert e.initial_age == 30
    assert isinstance(decide(PRIVATE, e, GET, 169.9), Fresh)
    assert isinstance(decide(PRIVATE, e, GET, 170.0), Revalidate)
    assert current_age(e, 150) == 80


def test_response_delay_counts_in_the_age() -> None:
    e = entry((("Cache-Control", "max-age=100"), ("Age", "10")), request_time=98.0)
    assert e.initial_age == 12


def test_apparent_age_from_date() -> None:
    e = entry((("Cache-Control", "max-age=100"),), wall=WALL + 40.7)
    assert e.initial_age == pytest.approx(39.7)  # the Date's one-second resolution left out
    assert entry((("Cache-Control", "max-age=100"),), wall=WALL + 0.99).initial_age == 0


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5", "", "0, 0", "3600, 3600", "5, 100"])
def test_invalid_age_makes_the_entry_stale(bad: str) -> None:
    e = entry((("Cache-Control", "max-age=100"), ("Age", bad)))
    assert isinstance(decide(PRIVATE, e, GET, 100.0), Revalidate)


@pytest.mark.parametrize("lines", [("0", "0"), ("0", "7200")])
def test_age_on_two_lines_makes_the_entry_stale(lines: tuple[str, str]) -> None:
    e = entry((("Cache-Control", "max-age=100"), ("Age", lines[0]), ("Age", lines[1])))
    assert isinstance(decide(PRIVATE, e, GET, 100.0), Revalidate)


@given(
    max_age=st.integers(min_value=0, max_value=10_000),
    age=st.integers(min_value=0, max_value=10_000),
    delay=st.floats(min_value=0, max_value=100),
    elapsed=st.floats(min_value=0, max_value=20_000),
)
def test_fresh_exactly_while_the_current_age_is_below_the_lifetime(
    max_age: int, age: int, delay: float, elapsed: float
) -> None:
    e = entry(
        (("Cache-Control", f"max-age={max_age}"), ("Age", str(age))),
        request_time=100.0 - delay,
        response_time=100.0,
    )
    now = 100.0 + elapsed
    expected_age = max(age + delay, 0) + elapsed
    assert current_age(e, now) == pytest.approx(expected_age)
    fresh = isinstance(decide(PRIVATE, e, GET, now), Fresh)
    assert fresh == (now < 100.0 + max_age - (age + delay))


def test_no_cache_always_revalidates_with_validators() -> None:
    e = entry((("Cache-Control", "no-cache, max-age=100"), ("ETag", '"v"'),
               ("Last-Modified", DATE)))
    verdict = decide(PRIVATE, e, GET, 100.0)
    assert verdict == Revalidate((("If-None-Match", '"v"'), ("If-Modified-Since", DATE)))


def test_stale_without_validators_goes_unconditional() -> None:
    e = entry((("Cache-Control", "max-age=1"),))
    assert decide(PRIVATE, e, GET, 200.0) == Revalidate(())


# --------------------------------------------------------------------------- request directives


def test_request_directives() -> None:
    e = entry((("Cache-Control", "max-age=100"), ("ETag", '"v"')))
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="no-cache"), 100), Revalidate)
    assert isinstance(decide(PRIVATE, e, RequestFacts(pragma="no-cache"), 100), Revalidate)
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="max-age=5"), 106), Revalidate)
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="max-age=5"), 104), Fresh)
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="min-fresh=50"), 160),
                      Revalidate)
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="max-stale=10"), 205), Fresh)
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="max-stale=10"), 215),
                      Revalidate)
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="max-stale"), 9999), Fresh)


def test_max_stale_never_overrides_must_revalidate() -> None:
    e = entry((("Cache-Control", "max-age=1, must-revalidate"),))
    assert isinstance(decide(PRIVATE, e, RequestFacts(cache_control="max-stale"), 150), Revalidate)


# --------------------------------------------------------------------------- conditional requests


def test_callers_if_none_match_on_a_fresh_entry_gets_304() -> None:
    e = entry((("Cache-Control", "max-age=100"), ("ETag", 'W/"v"')))
    assert isinstance(decide(PRIVATE, e, RequestFacts(if_none_match='"v"'), 100), NotModified)
    assert isinstance(decide(PRIVATE, e, RequestFacts(if_none_match='"other"'), 100), Fresh)


def test_callers_if_modified_since() -> None:
    e = entry((("Cache-Control", "max-age=100"), ("Last-Modified", DATE)))
    later = formatdate(WALL + 10, usegmt=True)
    earlier = formatdate(WALL - 10, usegmt=True)
    assert isinstance(decide(PRIVATE, e, RequestFacts(if_modified_since=later), 100), NotModified)
    assert isinstance(decide(PRIVATE, e, RequestFacts(if_modified_since=earlier), 100), Fresh)


def test_a_304_refreshes_the_entry_and_its_headers() -> None:
    e = entry((("Cache-Control", "max-age=10"), ("ETag", '"v"'), ("X-Version", "1"),
               ("Content-Length", "4"), ("Content-MD5", "old"), ("Content-Type", "text/plain")))
    new = refreshed(
        PRIVATE, e,
        (("Cache-Control", "max-age=20"), ("X-Version", "2"), ("Content-Length", "0"),
         ("Connection", "keep-alive"), ("Date", formatdate(WALL + 50, usegmt=True)),
         ("Content-MD5", "new"), ("Content-Type", "text/csv")),
        request_time=150.0, response_time=150.0, wall=WALL + 50,
    )
    fields = dict(new.headers)
    assert fields["X-Version"] == "2"
    assert fields["Content-MD5"] == "new" and fields["Content-Type"] == "text/csv"
    assert fields["Content-Length"] == "4"  # never updated from a 304
    assert "Connection" not in fields
    assert new.body == e.body and new.etag == '"v"'
    assert new.lifetime == 20
    assert isinstance(decide(PRIVATE, new, GET, 169), Fresh)


# --------------------------------------------------------------------------- stale-*


def test_stale_if_error_window() -> None:
    e = entry((("Cache-Control", "max-age=10, stale-if-error=30"),))
    assert stale_on_error(e, 140)
    assert not stale_on_error(e, 141)
    assert not stale_on_error(entry((("Cache-Control", "max-age=10"),)), 111)
    assert stale_on_error(entry((("Cache-Control", "max-age=10"),),
                                policy=Policy(stale_if_error=5)), 115)
    must = entry((("Cache-Control", "max-age=10, must-revalidate, stale-if-error=30"),))
    assert not stale_on_error(must, 111)


def test_stale_while_revalidate_window() -> None:
    e = entry((("Cache-Control", "max-age=10, stale-while-revalidate=5"), ("ETag", '"v"')))
    verdict = decide(PRIVATE, e, GET, 112)
    assert verdict == ServeStale(12.0, (("If-None-Match", '"v"'),))
    assert isinstance(decide(PRIVATE, e, GET, 116), Revalidate)


# --------------------------------------------------------------------------- invalidation


def test_unsafe_methods_invalidate_target_location_and_content_location() -> None:
    url = URL("http://a.example/items/1")
    urls = invalidated_urls(
        url, 201,
        (("Location", "/items/2"), ("Content-Location", "http://a.example/items/3#x"),
         ("Location", "http://evil.example/items/1")),
    )
    assert urls == [url, URL("http://a.example/items/2"), URL("http://a.example/items/3")]
    assert invalidated_urls(url, 500, (("Location", "/x"),)) == []
    assert invalidated_urls(url, 404, ()) == []
