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
from calendar import timegm
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_tz

from yarl import URL

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
]

Headers = tuple[tuple[str, str], ...]
"""Header fields as (name, value) pairs, in order, names as received."""

MAX_DELTA = 2**31
"""Delta-seconds larger than this are taken as this (RFC 9111 §1.2.2)."""

HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
"""Statuses reusable without explicit freshness (RFC 9110 §15.1), except 206: this cache does
not combine partial content."""

UNDERSTOOD_STATUSES = frozenset(
    {200, 203, 204, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 451, 500, 501,
     502, 503, 504}
)
"""Statuses whose caching rules this cache implements (for ``must-understand``)."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "upgrade",
        "trailer",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
"""Fields that describe one connection, never stored nor replayed (RFC 9110 §7.6.1)."""

_NOT_STORED = HOP_BY_HOP | {"age"}
_COOKIES = frozenset({"set-cookie", "set-cookie2"})
# RFC 9111 §3.2: a 304 updates every stored field except Content-Length and the fields the
# stored response depends on (its body was decoded, and is never a range).
_NOT_UPDATED = _NOT_STORED | {"content-length", "content-encoding", "content-range"}
_DELTA_DIGITS = len(str(2**31))


# --------------------------------------------------------------------------- parsing


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """``Cache-Control`` as ``{directive: argument or None}``, names lowercased, quotes
    removed. The first occurrence of a directive wins. Commas inside quotes are kept."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in _split_commas(value):
        name, eq, arg = part.partition("=")
        name = name.strip().lower()
        if not name or name in out:
            continue
        if eq:
            arg = arg.strip()
            if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
                arg = arg[1:-1]
            out[name] = arg
        else:
            out[name] = None
    return out


def _split_commas(value: str) -> list[str]:
    if '"' not in value:
        return value.split(",")
    parts: list[str] = []
    start = 0
    quoted = False
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def parse_delta(value: str | None) -> int | None:
    """A delta-seconds value (non-negative decimal integer), capped at 2**31; ``None`` when
    missing or invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        return None
    digits = value.lstrip("0")
    if len(digits) > _DELTA_DIGITS:  # int() of a long string is slow, or refused (4,300 digits)
        return MAX_DELTA
    return min(int(digits or "0"), MAX_DELTA)


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime) as epoch seconds; ``None`` if invalid."""
    if not value:
        return None
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return float(timegm(parsed[:6]) - (parsed[9] or 0))
    except (OverflowError, ValueError):
        return None


def _get(headers: Headers, name: str) -> str | None:
    """All values of one field joined by ", " (``name`` lowercase), or ``None``."""
    found: list[str] = []
    for k, v in headers:
        if k.lower() == name:
            found.append(v)
    if not found:
        return None
    return found[0] if len(found) == 1 else ", ".join(found)


def _connection_listed(headers: Headers) -> frozenset[str]:
    listed = _get(headers, "connection")
    if not listed:
        return frozenset()
    return frozenset(t.strip().lower() for t in listed.split(",") if t.strip())


def stored_headers(headers: Headers, *, shared: bool = False) -> Headers:
    """The fields a cache keeps: without hop-by-hop fields, fields named in ``Connection``
    and ``Age`` (regenerated on every reuse); a shared cache drops ``Set-Cookie`` too."""
    drop = _NOT_STORED | _connection_listed(headers)
    if shared:
        drop |= _COOKIES
    return tuple((k, v) for k, v in headers if k.lower() not in drop)


def vary_names(headers: Headers) -> tuple[str, ...] | None:
    """The request fields named by ``Vary`` (lowercase, sorted, unique); ``None`` for
    ``Vary: *`` (the response can never be reused)."""
    value = _get(headers, "vary")
    if not value:
        return ()
    names = {t.strip().lower() for t in value.split(",") if t.strip()}
    if "*" in names:
        return None
    return tuple(sorted(names))


def etag_matches(if_none_match: str, etag: str | None) -> bool:
    """Weak comparison of an ``If-None-Match`` list with an entity tag (RFC 9110 §13.1.2)."""
    if if_none_match.strip() == "*":
        return etag is not None
    if etag is None:
        return False
    mine = etag.strip().removeprefix("W/")
    return any(t.strip().removeprefix("W/") == mine for t in _split_commas(if_none_match))


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Policy:
    """The cache's configuration, as the rules see it.

    Attributes:
        shared: behave as a shared cache (``s-maxage``, ``private``, ``Authorization``).
        ttl: lifetime in seconds of a response without freshness information (0 = reuse
            only after revalidation).
        respect_headers: when false, Cache-Control/Expires/Age are ignored and every response
            with a heuristically cacheable status lives ``ttl`` seconds.
        stale_if_error: seconds past expiry a stale entry may stand in for a failed origin
            when the response does not say (its ``stale-if-error`` wins).
        stale_while_revalidate: seconds past expiry a stale entry may be served while it is
            refreshed in the background, when the response does not say.
    """

    shared: bool = False
    ttl: float = 60.0
    respect_headers: bool = True
    stale_if_error: float = 0.0
    stale_while_revalidate: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the rules need from a request: its method and its caching-related fields."""

    method: str = "GET"
    cache_control: str | None = None
    pragma: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    authorization: bool = False
    """Whether the request carries credentials (``Authorization``)."""


@dataclass(slots=True, eq=False)
class Entry:
    """A stored response, with everything :func:`decide` needs precomputed.

    ``fresh_until`` is the time (on the caller's clock) when the entry turns stale;
    ``initial_age`` the corrected age when it was received (RFC 9111 §4.2.3).
    """

    method: str
    status: int
    reason: str
    headers: Headers
    body: bytes
    vary: tuple[tuple[str, str | None], ...]
    request_time: float
    response_time: float
    initial_age: float
    lifetime: float
    fresh_until: float
    no_cache: bool
    must_revalidate: bool
    etag: str | None
    last_modified: str | None
    stale_if_error: float
    stale_while_revalidate: float
    size: int
    owner: str | None = None
    """Who may reuse it: set by the layer (a digest of the caller's credentials in a private
    cache); the rules never read it."""
    view: object = field(default=None, repr=False)
    """Free slot for the layer (a prebuilt header view); the rules never read it."""


@dataclass(frozen=True, slots=True)
class Fresh:
    """Serve the entry as it is; ``age`` in seconds for the ``Age`` field."""

    age: float


@dataclass(frozen=True, slots=True)
class NotModified:
    """The caller's own conditional request matches the fresh entry: answer 304."""

    age: float


@dataclass(frozen=True, slots=True)
class ServeStale:
    """Serve the stale entry now and refresh it in the background (stale-while-revalidate)."""

    age: float
    conditional: Headers


@dataclass(frozen=True, slots=True)
class Revalidate:
    """Ask the origin, adding ``conditional`` (empty when the entry has no validators: the
    request is then unconditional and the entry only serves stale-if-error)."""

    conditional: Headers


Verdict = Fresh | NotModified | ServeStale | Revalidate


# --------------------------------------------------------------------------- storing


def _lifetime(
    policy: Policy, status: int, cc: Mapping[str, str | None], headers: Headers, wall: float
) -> float:
    if policy.shared and "s-maxage" in cc:
        s = parse_delta(cc["s-maxage"])
        return float(s) if s is not None else 0.0
    if "max-age" in cc:
        m = parse_delta(cc["max-age"])
        return float(m) if m is not None else 0.0
    expires_raw = _get(headers, "expires")
    if expires_raw is not None:
        expires = parse_http_date(expires_raw)
        if expires is None:
            return 0.0  # an invalid Expires ("0") means already expired
        date = parse_http_date(_get(headers, "date"))
        return max(0.0, expires - (date if date is not None else math.floor(wall)))
    if status in HEURISTIC_STATUSES or "public" in cc:
        return policy.ttl
    return 0.0


def can_store(
    policy: Policy, request: RequestFacts, status: int, headers: Headers
) -> str | None:
    """``None`` when the response may be stored, else the reason it may not (RFC 9111 §3)."""
    if status < 200 or status == 206 or status == 304:
        return f"status {status}"
    if request.method not in ("GET", "HEAD"):
        return f"method {request.method}"
    if vary_names(headers) is None:
        return "Vary: *"
    if not policy.respect_headers:
        return None if status in HEURISTIC_STATUSES else f"status {status} without headers"
    req_cc = parse_cache_control(request.cache_control)
    if "no-store" in req_cc:
        return "request no-store"
    cc = parse_cache_control(_get(headers, "cache-control"))
    if "must-understand" in cc:
        if status not in UNDERSTOOD_STATUSES:
            return f"must-understand and status {status} unknown"
    elif "no-store" in cc:
        return "no-store"
    if policy.shared:
        if "private" in cc:
            return "private"
        if any(k.lower() in _COOKIES for k, _ in headers):
            return "Set-Cookie in a shared cache"
        if request.authorization and not (
            "public" in cc or "must-revalidate" in cc or "s-maxage" in cc
        ):
            return "Authorization without public, s-maxage or must-revalidate"
    explicit = (
        "public" in cc
        or ("private" in cc and not policy.shared)
        or "max-age" in cc
        or (policy.shared and "s-maxage" in cc)
        or _get(headers, "expires") is not None
    )
    if not explicit and status not in HEURISTIC_STATUSES:
        return f"status {status} without explicit freshness"
    return None


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
) -> Entry:
    """The stored form of a response that :func:`can_store` accepted."""
    kept = stored_headers(headers, shared=policy.shared)
    etag = _get(kept, "etag")
    last_modified = _get(kept, "last-modified")
    if not policy.respect_headers:
        return Entry(
            request.method, status, reason, kept, body, vary, request_time, response_time,
            0.0, policy.ttl, response_time + policy.ttl, False, False, etag, last_modified,
            policy.stale_if_error, policy.stale_while_revalidate, _size(kept, body),
        )
    cc = parse_cache_control(_get(headers, "cache-control"))
    lifetime = _lifetime(policy, status, cc, headers, wall)
    # Age (RFC 9111 §4.2.3, §5.1): one delta-seconds; anything else (a list, the field twice)
    # is invalid and makes the response stale.
    age_raw = _get(headers, "age")
    age_invalid = False
    age_value = 0
    if age_raw is not None:
        parsed = parse_delta(age_raw) if "," not in age_raw else None
        if parsed is None:
            age_invalid = True
        else:
            age_value = parsed
    date = parse_http_date(_get(headers, "date"))
    # An HTTP-date has one-second resolution: an apparent age within it is not counted.
    apparent_age = max(0.0, wall - date - 1.0) if date is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    initial_age = max(apparent_age, age_value + response_delay)
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
        _size(kept, body),
    )


def _size(headers: Headers, body: bytes) -> int:
    return len(body) + sum(len(k) + len(v) + 4 for k, v in headers) + 200


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
    drop = _NOT_UPDATED | _connection_listed(headers_304)
    if policy.shared:
        drop |= _COOKIES
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
