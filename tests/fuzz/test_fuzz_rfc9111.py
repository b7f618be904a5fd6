"""Fuzz of the HTTP caching rules (``_rfc9111``): hostile headers never raise, results keep
their documented types and ranges, and the parsers agree with reference formulas."""

from __future__ import annotations

import calendar
import email.utils
import math
import time

import pytest
from _gen import MAX_DIGITS, digits, hostile, http_dates
from _profiles import FUZZ
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from resilient_http._cache_fields import field_value, fields_of
from resilient_http._rfc9111 import (
    MAX_DELTA,
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

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
NAMES = [
    "Cache-Control", "cache-control", "Age", "Expires", "Date", "ETag", "Last-Modified",
    "Vary", "Set-Cookie", "Connection", "Pragma", "Content-Length", "Content-MD5",
    "Location", "Content-Location", "Keep-Alive", "X-Title",
]
header_names = st.one_of(st.sampled_from(NAMES), tokens)
header_values = st.one_of(hostile(), http_dates(), digits)
headers = st.lists(st.tuples(header_names, header_values), max_size=10).map(tuple)
policies = st.builds(
    Policy,
    shared=st.booleans(),
    ttl=st.floats(0, 1e7),
    respect_headers=st.booleans(),
    stale_if_error=st.floats(0, 1e5),
    stale_while_revalidate=st.floats(0, 1e5),
)
maybe_text = st.none() | hostile()
requests = st.builds(
    RequestFacts,
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "get"]),
    cache_control=maybe_text,
    pragma=maybe_text,
    if_none_match=maybe_text,
    if_modified_since=st.none() | http_dates(),
    authorization=st.booleans(),
)
WALL = 1_700_000_000.0


def _finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


# --------------------------------------------------------------------------- parsers


@FUZZ
@given(st.one_of(hostile(), http_dates(), digits, digits.map(lambda d: f" {d}\t")),
       st.none() | hostile())
@example("2147483648", None)
@example("9" * MAX_DIGITS, None)
def test_value_parsers_on_hostile_text(value: str, etag: str | None) -> None:
    """One hostile value through every single-value parser: Cache-Control, delta-seconds
    (against a reference), HTTP-date, entity-tag comparison."""
    cc = parse_cache_control(value)
    assert isinstance(cc, dict)
    for name, arg in cc.items():
        assert name and name == name.strip().lower()
        assert arg is None or isinstance(arg, str)
    got = parse_delta(value)
    assert got == _reference_delta(value)
    assert got is None or (type(got) is int and 0 <= got <= MAX_DELTA)
    date = parse_http_date(value)
    assert date is None or _finite(date)
    assert isinstance(etag_matches(value, etag), bool)


quoted = st.text(st.characters(blacklist_characters='"\\', blacklist_categories=["Cs"]),
                 max_size=12)
directive_args = st.none() | tokens | quoted.map(lambda s: f'"{s}"')


@FUZZ
@given(st.dictionaries(tokens, directive_args, max_size=8))
def test_parse_cache_control_round_trip(directives: dict[str, str | None]) -> None:
    text = ", ".join(k if v is None else f"{k}={v}" for k, v in directives.items())
    expected = {
        k: None if v is None else v[1:-1] if v.startswith('"') and len(v) >= 2 else v
        for k, v in directives.items()
    }
    assert parse_cache_control(text) == expected


def _reference_delta(value: str) -> int | None:
    s = value.strip()
    if not s or any(c not in "0123456789" for c in s):
        return None
    return min(int(s), MAX_DELTA)


def test_parse_delta_longer_than_the_int_digit_limit() -> None:
    assert parse_delta("9" * 5000) == MAX_DELTA


@FUZZ
@given(st.integers(0, 253402300799))
def test_parse_http_date_round_trip(stamp: int) -> None:
    imf = email.utils.formatdate(stamp, usegmt=True)
    asctime = time.asctime(time.gmtime(stamp))
    assert parse_http_date(imf) == float(stamp)
    assert parse_http_date(asctime) == float(stamp)


def _near(choices: list[str], size: int) -> st.SearchStrategy[str]:
    """One of ``choices``, or any ``size`` characters (digits, letters, blanks, a non-ASCII
    digit) in their place."""
    return st.one_of(
        st.sampled_from(choices),
        st.text("0123456789aZ :,\u0663", min_size=size, max_size=size),
    )


two = _near(["00", "01", "06", "23", "29", "31", "59", "60", "99"], 2)
fixdates = st.builds(
    "{}, {} {} {} {}:{}:{} GMT".format,
    _near(["Mon", "Sun", "sun", "Foo"], 3),
    two,
    _near(["Jan", "Feb", "Nov", "nov", "Dec", "Xyz"], 3),
    _near(["0001", "0094", "0100", "1969", "1994", "2026", "9999"], 4),
    two,
    two,
    two,
)


@FUZZ
@given(fixdates)
@example("Sun, 06 Nov 1994 08:49:37 GMT")
@example("Sun, 31 Feb 2026 24:60:60 GMT")
@example("Sun, 06 Nov 0094 08:49:37 GMT")
def test_the_imf_fixdate_fast_path_agrees_with_the_general_parser(value: str) -> None:
    """``parse_http_date`` reads the common form by position: the same result as the general
    parser (``email.utils``) for every string of that shape, read or refused."""
    assert parse_http_date(value) == _general_date(value)
    assert parse_http_date(value) == _general_date(value)  # the kept last Date, again


def _general_date(value: str) -> float | None:
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return float(calendar.timegm(parsed[:6]) - (parsed[9] or 0))
    except (OverflowError, ValueError):
        return None


@FUZZ
@given(headers, st.booleans())
def test_fields_of_agrees_with_field_value(fields: tuple[tuple[str, str], ...], shared: bool
                                           ) -> None:
    """The one-pass view of the fields gives what a scan per name gives, and storing with it
    keeps the same fields."""
    one_pass = fields_of(fields)
    for name in {k.lower() for k, _ in fields} | {"etag", "vary"}:
        assert one_pass.get(name) == field_value(fields, name)
    assert stored_headers(fields, shared=shared, fields=one_pass) == stored_headers(
        fields, shared=shared
    )


@FUZZ
@given(st.lists(tokens.map(lambda t: f'"{t}"'), min_size=1, max_size=5), st.data())
def test_etag_matches_reference(tags: list[str], data: st.DataObject) -> None:
    etag = data.draw(st.sampled_from(tags))
    weak = data.draw(st.booleans())
    listed = ", ".join(f"W/{t}" if weak and t == etag else t for t in tags)
    assert etag_matches(listed, etag)
    assert etag_matches(listed, "W/" + etag)
    assert not etag_matches(listed, '"not a token"')


@FUZZ
@given(
    st.sampled_from(["http://a.example/x?q=1", "https://a.example:8443/", "http://127.0.0.1/p"]),
    st.integers(100, 599),
    st.lists(st.tuples(st.sampled_from(["Location", "Content-Location", "X"]), hostile()),
             max_size=4),
)
def test_invalidated_urls_never_raise(url: str, status: int, fields: list[tuple[str, str]]
                                      ) -> None:
    request_url = URL(url)
    out = invalidated_urls(request_url, status, fields)
    assert all(isinstance(u, URL) for u in out)
    assert all(u.origin() == request_url.origin() for u in out)


# --------------------------------------------------------------------------- the rules


@FUZZ
@given(policies, requests, requests, st.integers(100, 599), headers, headers,
       st.floats(0, 1e3), st.floats(0, 1e9))
def test_store_decide_refresh_never_raise(
    policy: Policy,
    request: RequestFacts,
    later: RequestFacts,
    status: int,
    fields: tuple[tuple[str, str], ...],
    fields_304: tuple[tuple[str, str], ...],
    delay: float,
    elapsed: float,
) -> None:
    kept = stored_headers(fields)
    assert set(kept) <= set(fields)
    assert not any(k.lower() in ("age", "connection") for k, _ in kept)
    names = vary_names(fields)
    assert names is None or (list(names) == sorted(set(names)) and all(names))
    reason = can_store(policy, request, status, fields)
    # A private cache keeps Set-Cookie (RFC 9111 section 7.3); a shared one stores no such
    # response at all, whether it follows the response's headers or not.
    if policy.shared and any(k.lower() == "set-cookie" for k, _ in fields):
        assert reason is not None
    if reason is not None:
        assert isinstance(reason, str) and reason
        return
    entry = make_entry(
        policy, request, status=status, reason="OK", headers=fields, body=b"x", vary=(),
        request_time=100.0, response_time=100.0 + delay, wall=WALL,
    )
    _check_entry(entry)
    now = entry.response_time + elapsed
    verdict = decide(policy, entry, later, now)
    assert isinstance(verdict, (Fresh, NotModified, ServeStale, Revalidate))
    if isinstance(verdict, (Fresh, NotModified, ServeStale)):
        assert _finite(verdict.age) and verdict.age >= 0
    if isinstance(verdict, (ServeStale, Revalidate)):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in verdict.conditional)
    assert current_age(entry, now) >= 0
    assert isinstance(stale_on_error(entry, now), bool)
    again = refreshed(policy, entry, fields_304, request_time=now, response_time=now,
                      wall=WALL + elapsed)
    _check_entry(again)


def _check_entry(entry: Entry) -> None:
    assert isinstance(entry, Entry)
    for value in (entry.initial_age, entry.lifetime, entry.fresh_until, entry.stale_if_error,
                  entry.stale_while_revalidate):
        assert _finite(value)
    assert entry.initial_age >= 0 and entry.lifetime >= 0
    assert entry.size > 0
    assert not any(k.lower() == "age" for k, _ in entry.headers)  # Set-Cookie: see above


AGE_LISTS = [
    (("Age", "0, 0"),),
    (("Age", "3600, 3600"),),
    (("Age", "0"), ("Age", "0")),
    (("Age", "0"), ("Age", "7200")),
]


@pytest.mark.parametrize(
    "ages",
    AGE_LISTS,
)
def test_an_age_list_makes_the_response_stale(ages: tuple[tuple[str, str], ...]) -> None:
    entry = make_entry(
        Policy(), RequestFacts(), status=200, reason="OK",
        headers=(("Cache-Control", "max-age=86400"), *ages), body=b"", vary=(),
        request_time=0.0, response_time=0.0, wall=WALL,
    )
    assert isinstance(decide(Policy(), entry, RequestFacts(), 1.0), Revalidate)
