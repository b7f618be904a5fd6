"""HTTP caching (RFC 9111, with RFC 5861's stale-* extensions) as pure functions over small
dataclasses: no I/O, no clock of its own, no aiohttp.

The cache layer feeds it facts and follows its verdicts, hishel-style:

* :func:`can_store` — may this response be stored? (a reason when not)
* :func:`make_entry` — the stored form: filtered headers, freshness lifetime, corrected age;
* :func:`decide` — for a stored entry and a new request: :class:`Fresh` (serve it),
  :class:`NotModified` (answer the caller's own conditional request with 304),
  :class:`ServeStale` (stale-while-revalidate: serve it and refresh in the background) or
  :class:`Revalidate` (ask the origin, conditionally when the entry has validators);
* :func:`refreshed` — the entry updated from a ``304 Not Modified``;
* :func:`stale_on_error` — may a stale entry stand in for a failed origin (stale-if-error)?
* :func:`invalidated_urls` — what an unsafe method's response invalidates.

The header parsers live in :mod:`resilient_http._cache_fields` and the dataclasses in
:mod:`resilient_http._cache_model`; this module re-exports them.

Times: ``now``, ``request_time`` and ``response_time`` are on the caller's monotonic clock
(seconds); ``wall`` is the wall-clock time (epoch seconds) at the response, used only to
compare with the origin's ``Date``. HTTP dates have one-second resolution, so the apparent
age (RFC 9111 §4.2.3) leaves that second out: a response dated "now" is not aged by the
truncation of its ``Date``.

Where RFC 9111 leaves a choice, the conservative one is taken: a qualified ``private`` or
``no-cache`` (with field names) counts as unqualified; an invalid ``Age`` (a list, or the
field repeated) makes the response stale (it is revalidated before reuse). ``Set-Cookie`` is
stored by a private cache (RFC 9111 §7.3) and never by a shared one: :func:`can_store`
refuses such a response there, so one client's cookie never reaches another.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from itertools import chain
from types import MappingProxyType

from yarl import URL

from resilient_http._cache_fields import (
    COOKIES,
    HOP_BY_HOP,
    MAX_DELTA,
    NOT_STORED,
    NOT_UPDATED,
    Headers,
    connection_listed,
    etag_matches,
    field_value,
    fields_of,
    parse_cache_control,
    parse_delta,
    parse_http_date,
    stored_headers,
    vary_names,
    vary_of,
)
from resilient_http._cache_model import (
    Entry,
    Fresh,
    NotModified,
    Policy,
    RequestFacts,
    Revalidate,
    ServeStale,
    Verdict,
)

__all__ = [
    "Policy",
    "RequestFacts",
    "Entry",
    "Fresh",
    "NotModified",
    "ServeStale",
    "Revalidate",
    "Verdict",
    "parse_cache_control",
    "parse_delta",
    "parse_http_date",
    "stored_headers",
    "vary_names",
    "can_store",
    "make_entry",
    "decide",
    "current_age",
    "refreshed",
    "stale_on_error",
    "etag_matches",
    "invalidated_urls",
    "HEURISTIC_STATUSES",
    "HOP_BY_HOP",
    "MAX_DELTA",
]

HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
"""Statuses reusable without explicit freshness (RFC 9110 §15.1), except 206: this cache does
not combine partial content."""

UNDERSTOOD_STATUSES = frozenset(
    {200, 203, 204, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 451, 500, 501,
     502, 503, 504}
)
"""Statuses whose caching rules this cache implements (for ``must-understand``)."""

# --------------------------------------------------------------------------- storing


def _lifetime(
    policy: Policy, status: int, cc: Mapping[str, str | None], fields: Mapping[str, str],
    wall: float,
) -> float:
    if policy.shared and "s-maxage" in cc:
        s = parse_delta(cc["s-maxage"])
        return float(s) if s is not None else 0.0
    if "max-age" in cc:
        m = parse_delta(cc["max-age"])
        return float(m) if m is not None else 0.0
    expires_raw = fields.get("expires")
    if expires_raw is not None:
        expires = parse_http_date(expires_raw)
        if expires is None:
            return 0.0  # an invalid Expires ("0") means already expired
        date = parse_http_date(fields.get("date"))
        return max(0.0, expires - (date if date is not None else math.floor(wall)))
    if status in HEURISTIC_STATUSES or "public" in cc:
        return policy.ttl
    return 0.0


_NO_DIRECTIVES: Mapping[str, str | None] = MappingProxyType({})


def _directives(value: str | None) -> Mapping[str, str | None]:
    """``Cache-Control`` parsed, read-only: one response's value is parsed once for
    :func:`can_store` and again for :func:`make_entry`, so the last one is kept."""
    if not value:
        return _NO_DIRECTIVES
    seen, parsed = _last_cc[0]
    if value != seen:
        parsed = MappingProxyType(parse_cache_control(value))
        _last_cc[0] = (value, parsed)
    return parsed


_last_cc: list[tuple[str, Mapping[str, str | None]]] = [("", _NO_DIRECTIVES)]


def can_store(
    policy: Policy, request: RequestFacts, status: int, headers: Headers,
    fields: Mapping[str, str] | None = None,
) -> str | None:
    """``None`` when the response may be stored, else the reason it may not (RFC 9111 §3).
    ``fields``: :func:`fields_of` the ``headers``, when the caller has it already."""
    if status < 200 or status == 206 or status == 304:
        return f"status {status}"
    if request.method not in ("GET", "HEAD"):
        return f"method {request.method}"
    if fields is None:
        fields = fields_of(headers)
    if "vary" in fields and vary_of(fields["vary"]) is None:
        return "Vary: *"
    if policy.shared:  # checked first: ignoring the headers must not hand one client's to others
        if not COOKIES.isdisjoint(fields):
            return "Set-Cookie in a shared cache"
        if request.authorization and not policy.respect_headers:
            return "Authorization in a shared cache that ignores the response's headers"
    if not policy.respect_headers:
        return None if status in HEURISTIC_STATUSES else f"status {status} without headers"
    if request.cache_control and "no-store" in parse_cache_control(request.cache_control):
        return "request no-store"
    cc = _directives(fields.get("cache-control"))
    if "must-understand" in cc:
        if status not in UNDERSTOOD_STATUSES:
            return f"must-understand and status {status} unknown"
    elif "no-store" in cc:
        return "no-store"
    if policy.shared:
        if "private" in cc:
            return "private"
        if request.authorization and not (
            "public" in cc or "must-revalidate" in cc or "s-maxage" in cc
        ):
            return "Authorization without public, s-maxage or must-revalidate"
    if status in HEURISTIC_STATUSES:
        return None
    explicit = (
        "public" in cc
        or ("private" in cc and not policy.shared)
        or "max-age" in cc
        or (policy.shared and "s-maxage" in cc)
        or "expires" in fields
    )
    return None if explicit else f"status {status} without explicit freshness"


def make_entry(
    policy: Policy,
    request: RequestFacts,
    *,
    status: int,
    reason: str,
    headers: Headers,
    body: bytes,
    vary: tuple[tuple[str, str | None], ...],
    request_time: float,
    response_time: float,
    wall: float,
    fields: Mapping[str, str] | None = None,
) -> Entry:
    """The stored form of a response that :func:`can_store` accepted. ``fields``:
    :func:`fields_of` the ``headers``, when the caller has it already."""
    if fields is None:
        fields = fields_of(headers)
    if NOT_STORED.isdisjoint(fields) and (not policy.shared or COOKIES.isdisjoint(fields)):
        kept = headers  # nothing to drop: stored_headers() would copy them all
        etag = fields.get("etag")
        last_modified = fields.get("last-modified")
    else:
        kept = stored_headers(headers, shared=policy.shared, fields=fields)
        etag = field_value(kept, "etag")
        last_modified = field_value(kept, "last-modified")
    size = len(body) + 200 + 4 * len(kept) + len("".join(chain.from_iterable(kept)))
    if not policy.respect_headers:
        return Entry(
            request.method, status, reason, kept, body, vary, request_time, response_time,
            0.0, policy.ttl, response_time + policy.ttl, False, False, etag, last_modified,
            policy.stale_if_error, policy.stale_while_revalidate, size,
        )
    cc = _directives(fields.get("cache-control"))
    if cc or "expires" in fields:
        lifetime = _lifetime(policy, status, cc, fields, wall)
    else:  # no explicit freshness: heuristic (_lifetime's last rule)
        lifetime = policy.ttl if status in HEURISTIC_STATUSES else 0.0
    # Age (RFC 9111 §4.2.3, §5.1): one delta-seconds; anything else (a list, the field twice)
    # is invalid and makes the response stale.
    age_raw = fields.get("age")
    age_invalid = False
    age_value = 0
    if age_raw is not None:
        parsed = parse_delta(age_raw) if "," not in age_raw else None
        if parsed is None:
            age_invalid = True
        else:
            age_value = parsed
    date = parse_http_date(fields.get("date"))
    # An HTTP-date has one-second resolution: an apparent age within it is not counted.
    # (Conditional expressions rather than max(): this is every stored miss's path.)
    apparent_age = wall - date - 1.0 if date is not None else 0.0
    response_delay = response_time - request_time
    corrected = age_value + (response_delay if response_delay > 0.0 else 0.0)
    initial_age = apparent_age if apparent_age > corrected else corrected
    if not cc:
        return Entry(
            request.method, status, reason, kept, body, vary, request_time, response_time,
            initial_age, lifetime, response_time + lifetime - initial_age, age_invalid, False,
            etag, last_modified, policy.stale_if_error, policy.stale_while_revalidate, size,
        )
    no_cache = "no-cache" in cc or age_invalid
    must_revalidate = "must-revalidate" in cc or (
        policy.shared and ("proxy-revalidate" in cc or "s-maxage" in cc)
    )
    sie = parse_delta(cc.get("stale-if-error")) if "stale-if-error" in cc else None
    swr = (
        parse_delta(cc.get("stale-while-revalidate"))
        if "stale-while-revalidate" in cc
        else None
    )
    return Entry(
        request.method,
        status,
        reason,
        kept,
        body,
        vary,
        request_time,
        response_time,
        initial_age,
        lifetime,
        response_time + lifetime - initial_age,
        no_cache,
        must_revalidate,
        etag,
        last_modified,
        float(sie) if sie is not None else policy.stale_if_error,
        float(swr) if swr is not None else policy.stale_while_revalidate,
        size,
    )


# --------------------------------------------------------------------------- reusing


def current_age(entry: Entry, now: float) -> float:
    """The entry's age in seconds at ``now`` (RFC 9111 §4.2.3)."""
    return entry.initial_age + max(0.0, now - entry.response_time)


def _conditional(entry: Entry) -> Headers:
    out: list[tuple[str, str]] = []
    if entry.etag is not None:
        out.append(("If-None-Match", entry.etag))
    if entry.last_modified is not None:
        out.append(("If-Modified-Since", entry.last_modified))
    return tuple(out)


def decide(policy: Policy, entry: Entry, request: RequestFacts, now: float) -> Verdict:
    """What to do with a stored entry that matches ``request`` (same key and ``Vary``)."""
    age = current_age(entry, now)
    fresh = not entry.no_cache and now < entry.fresh_until
    req_cc = parse_cache_control(request.cache_control) if request.cache_control else {}
    if not req_cc and request.pragma and "no-cache" in request.pragma.lower():
        req_cc = {"no-cache": None}
    if req_cc and policy.respect_headers:
        if "no-cache" in req_cc:
            return Revalidate(_conditional(entry))
        max_age = parse_delta(req_cc.get("max-age")) if "max-age" in req_cc else None
        if max_age is not None and age > max_age:
            fresh = False
        min_fresh = parse_delta(req_cc.get("min-fresh")) if "min-fresh" in req_cc else None
        if fresh and min_fresh is not None and entry.fresh_until - now < min_fresh:
            fresh = False
        if not fresh and "max-stale" in req_cc and not entry.must_revalidate and not (
            entry.no_cache
        ):
            limit = req_cc["max-stale"]
            allowed = parse_delta(limit) if limit is not None else MAX_DELTA
            if allowed is not None and now - entry.fresh_until <= allowed:
                fresh = True
    if fresh:
        if request.if_none_match is not None:
            if etag_matches(request.if_none_match, entry.etag):
                return NotModified(age)
        elif request.if_modified_since is not None and entry.last_modified is not None:
            since = parse_http_date(request.if_modified_since)
            modified = parse_http_date(entry.last_modified)
            if since is not None and modified is not None and modified <= since:
                return NotModified(age)
        return Fresh(age)
    if (
        entry.stale_while_revalidate > 0
        and not entry.no_cache
        and not entry.must_revalidate
        and now - entry.fresh_until <= entry.stale_while_revalidate
        and not req_cc
    ):
        return ServeStale(age, _conditional(entry))
    return Revalidate(_conditional(entry))


def stale_on_error(entry: Entry, now: float) -> bool:
    """Whether the stale ``entry`` may answer for an origin that failed (5xx or no answer):
    within its stale-if-error window and not ``must-revalidate``."""
    if entry.must_revalidate or entry.stale_if_error <= 0:
        return False
    return now - entry.fresh_until <= entry.stale_if_error


def refreshed(
    policy: Policy,
    entry: Entry,
    headers_304: Headers,
    *,
    request_time: float,
    response_time: float,
    wall: float,
) -> Entry:
    """The entry freshened by a ``304 Not Modified`` (RFC 9111 §4.3.4): the 304's fields
    replace the stored ones of the same name (except ``Content-Length`` and the fields never
    stored), and freshness starts again from this response."""
    drop = NOT_UPDATED | connection_listed(headers_304)
    if policy.shared:
        drop |= COOKIES
    update = [(k, v) for k, v in headers_304 if k.lower() not in drop]
    names = {k.lower() for k, _ in update}
    merged = tuple((k, v) for k, v in entry.headers if k.lower() not in names) + tuple(update)
    return make_entry(
        policy,
        RequestFacts(method=entry.method),
        status=entry.status,
        reason=entry.reason,
        headers=merged,
        body=entry.body,
        vary=entry.vary,
        request_time=request_time,
        response_time=response_time,
        wall=wall,
    )


def invalidated_urls(
    request_url: URL, status: int, headers: Iterable[tuple[str, str]]
) -> list[URL]:
    """What an unsafe method's response invalidates (RFC 9111 §4.4): nothing after an error
    status; else the target URI, and ``Location`` / ``Content-Location`` on the same origin."""
    if not 200 <= status < 400:
        return []
    out = [request_url]
    origin = request_url.origin()
    for name, value in headers:
        if name.lower() in ("location", "content-location"):
            try:
                target = request_url.join(URL(value.strip()))
            except (ValueError, TypeError):
                continue
            if target.is_absolute() and target.origin() == origin:
                out.append(target.with_fragment(None))
    return out
