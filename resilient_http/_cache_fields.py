"""HTTP header fields as a cache reads them (RFC 9110/9111): parsing, and what is stored.

Pure functions over ``(name, value)`` pairs; no I/O. Every parser takes hostile input: it
returns ``None`` (or an empty result) for what it cannot read, never raises.
"""

from __future__ import annotations

from calendar import timegm
from collections.abc import Mapping
from datetime import date
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
    "vary_of",
    "etag_matches",
    "field_value",
    "fields_of",
    "connection_listed",
    "COOKIES",
    "NOT_STORED",
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
NOT_STORED = HOP_BY_HOP | {"age"}
"""Fields never stored (lowercase): hop-by-hop ones and ``Age`` (regenerated on reuse)."""
COOKIES = frozenset({"set-cookie", "set-cookie2"})
# RFC 9111 §3.2: a 304 updates every stored field except Content-Length and the fields the
# stored response depends on (its body was decoded, and is never a range).
NOT_UPDATED = NOT_STORED | {"content-length", "content-encoding", "content-range"}
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
    seen, parsed = _last_date[0]
    if value == seen:  # the responses of one second carry the same Date
        return parsed
    parsed = _imf_fixdate(value)
    if parsed is None:
        parsed = _any_date(value)
    _last_date[0] = (value, parsed)
    return parsed


_last_date: list[tuple[str, float | None]] = [("", None)]
_DAY_NAMES = frozenset(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _imf_fixdate(value: str) -> float | None:
    """The common form, ``Sun, 06 Nov 1994 08:49:37 GMT``, read by position; ``None`` for
    anything else (left to :func:`_any_date`). Same arithmetic as ``calendar.timegm``."""
    if (
        len(value) != 29
        or value[25:] != " GMT"
        or value[3:5] != ", "
        or value[7] != " " or value[11] != " " or value[16] != " "
        or value[19] != ":" or value[22] != ":"
        or value[:3] not in _DAY_NAMES
    ):
        return None
    month = _MONTHS.get(value[8:11])
    digits = value[5:7] + value[12:16] + value[17:19] + value[20:22] + value[23:25]
    if month is None or not digits.isdigit() or not digits.isascii():
        return None
    year = int(value[12:16])
    if year < 100:  # two-digit years are read as 19xx/20xx: the general parser's rule
        return None
    days = date(year, month, 1).toordinal() - _EPOCH_DAY + int(value[5:7]) - 1
    hours = days * 24 + int(value[17:19])
    return float((hours * 60 + int(value[20:22])) * 60 + int(value[23:25]))


def _any_date(value: str) -> float | None:
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


def fields_of(headers: Headers) -> dict[str, str]:
    """Every field by lowercase name, its values joined by ", " (what :func:`field_value`
    returns for each name): one pass over the fields."""
    out: dict[str, str] = {}
    for k, v in headers:
        k = k.lower()
        if k in out:
            out[k] = f"{out[k]}, {v}"
        else:
            out[k] = v
    return out


def connection_listed(headers: Headers) -> frozenset[str]:
    return _listed(field_value(headers, "connection"))


def _listed(listed: str | None) -> frozenset[str]:
    if not listed:
        return frozenset()
    return frozenset(t.strip().lower() for t in listed.split(",") if t.strip())


def stored_headers(
    headers: Headers, *, shared: bool = False, fields: Mapping[str, str] | None = None
) -> Headers:
    """The fields a cache keeps: without hop-by-hop fields, fields named in ``Connection``
    and ``Age`` (regenerated on every reuse); a shared cache drops ``Set-Cookie`` too.
    ``fields`` (:func:`fields_of` the same ``headers``) spares a pass when nothing is dropped:
    ``headers`` itself is returned then."""
    if (
        fields is not None
        and NOT_STORED.isdisjoint(fields)
        and (not shared or COOKIES.isdisjoint(fields))
    ):
        return headers  # nothing to drop (``connection`` is in NOT_STORED)
    drop = NOT_STORED | (
        connection_listed(headers) if fields is None else _listed(fields.get("connection"))
    )
    if shared:
        drop |= COOKIES
    return tuple((k, v) for k, v in headers if k.lower() not in drop)


def vary_names(headers: Headers) -> tuple[str, ...] | None:
    """The request fields named by ``Vary`` (lowercase, sorted, unique); ``None`` for
    ``Vary: *`` (the response can never be reused)."""
    return vary_of(field_value(headers, "vary"))


def vary_of(value: str | None) -> tuple[str, ...] | None:
    """:func:`vary_names` of a ``Vary`` value (all of its fields joined)."""
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
