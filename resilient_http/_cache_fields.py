"""HTTP header fields as a cache reads them (RFC 9110/9111): parsing, and what is stored.

Pure functions over ``(name, value)`` pairs; no I/O. Every parser takes hostile input: it
returns ``None`` (or an empty result) for what it cannot read, never raises.
"""

from __future__ import annotations

from calendar import timegm
from email.utils import parsedate_tz

__all__ = [
    "Headers",
    "MAX_DELTA",
    "HOP_BY_HOP",
    "parse_cache_control",
    "parse_delta",
    "parse_http_date",
    "stored_headers",
    "vary_names",
    "etag_matches",
    "field_value",
    "connection_listed",
    "COOKIES",
    "NOT_UPDATED",
]

Headers = tuple[tuple[str, str], ...]
"""Header fields as (name, value) pairs, in order, names as received."""
MAX_DELTA = 2**31
"""Delta-seconds larger than this are taken as this (RFC 9111 §1.2.2)."""
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
COOKIES = frozenset({"set-cookie", "set-cookie2"})
# RFC 9111 §3.2: a 304 updates every stored field except Content-Length and the fields the
# stored response depends on (its body was decoded, and is never a range).
NOT_UPDATED = _NOT_STORED | {"content-length", "content-encoding", "content-range"}
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


def field_value(headers: Headers, name: str) -> str | None:
    """All values of one field joined by ", " (``name`` lowercase), or ``None``."""
    found: list[str] = []
    for k, v in headers:
        if k.lower() == name:
            found.append(v)
    if not found:
        return None
    return found[0] if len(found) == 1 else ", ".join(found)


def connection_listed(headers: Headers) -> frozenset[str]:
    listed = field_value(headers, "connection")
    if not listed:
        return frozenset()
    return frozenset(t.strip().lower() for t in listed.split(",") if t.strip())


def stored_headers(headers: Headers, *, shared: bool = False) -> Headers:
    """The fields a cache keeps: without hop-by-hop fields, fields named in ``Connection``
    and ``Age`` (regenerated on every reuse); a shared cache drops ``Set-Cookie`` too."""
    drop = _NOT_STORED | connection_listed(headers)
    if shared:
        drop |= COOKIES
    return tuple((k, v) for k, v in headers if k.lower() not in drop)


def vary_names(headers: Headers) -> tuple[str, ...] | None:
    """The request fields named by ``Vary`` (lowercase, sorted, unique); ``None`` for
    ``Vary: *`` (the response can never be reused)."""
    value = field_value(headers, "vary")
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
