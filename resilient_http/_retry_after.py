"""Pure parsers for the server's "wait this long" hints. None of them ever raises.

- ``Retry-After`` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
- ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers, structured: ``"default";r=0;t=30``),
  the older ``RateLimit-Reset`` (delta-seconds), and the vendor ``X-RateLimit-Reset``
  (epoch seconds as GitHub sends, epoch milliseconds, or delta-seconds),
  ``X-RateLimit-Reset-After`` (delta-seconds) and OpenAI's
  ``X-RateLimit-Reset-Requests``/``-Tokens`` durations (``"1s"``, ``"6m0s"``, ``"20ms"``).

Every function takes the current wall-clock time (``now``, seconds since the epoch) as a
parameter. An absolute time is measured against the response's own ``Date`` header when it
has one, so a skewed local clock does not stretch or shrink the wait.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping

__all__ = ["parse_retry_after", "parse_ratelimit_reset", "delay_hint"]

_DELTA = re.compile(r"\s*(\d{1,15}(?:\.\d{0,9})?)\s*\Z")
_GO_DURATION = re.compile(r"\s*((?:\d{1,12}(?:\.\d{0,9})?(?:h|ms|m|s|us|µs|ns))+)\s*\Z")
_GO_PART = re.compile(r"(\d{1,12}(?:\.\d{0,9})?)(h|ms|m|s|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# ``t=`` (current draft) or ``reset=`` (older drafts' combined form).
_RL_RESET = re.compile(r"(?:^|[;,])\s*(?:t|reset)\s*=\s*(\d{1,15})\s*(?=[;,]|$)")
_RL_REMAINING = re.compile(r"(?:^|[;,])\s*(?:r|remaining)\s*=\s*(\d{1,15})\s*(?=[;,]|$)")
# An X-RateLimit-Reset at or above this is an absolute time, not a delta (2001-09-09).
_EPOCH_SECONDS = 1e9
_EPOCH_MILLIS = 1e12


def _delta(value: str) -> float | None:
    m = _DELTA.match(value)
    return float(m.group(1)) if m else None


def _http_date(value: str) -> float | None:
    """Seconds since the epoch of an HTTP-date (IMF-fixdate, RFC 850 or asctime), or None."""
    try:
        parts = email.utils.parsedate_tz(value)
        if parts is None:
            return None
        if parts[9] is None:  # asctime has no zone: it is GMT by definition
            parts = (*parts[:9], 0)
        stamp = float(email.utils.mktime_tz(parts))
    except (ValueError, OverflowError, TypeError, IndexError):
        return None
    return stamp if math.isfinite(stamp) else None


def _reference(headers: Mapping[str, str] | None, now: float) -> float:
    """The server's idea of "now" (its ``Date`` header) when sane, else ``now``."""
    if headers is None:
        return now
    try:
        date = headers.get("Date")
    except Exception:
        return now
    if not isinstance(date, str):
        return now
    server_now = _http_date(date)
    return server_now if server_now is not None else now


def parse_retry_after(
    value: str | None, now: float, headers: Mapping[str, str] | None = None
) -> float | None:
    """The delay a ``Retry-After`` value asks for, in seconds (>= 0), or ``None`` if malformed.

    Args:
        value: the header value: delta-seconds (``"120"``; decimals tolerated) or an
            HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: the current wall-clock time, seconds since the epoch.
        headers: the response headers; their ``Date`` (if valid) replaces ``now`` as the
            reference for an HTTP-date, so client clock skew does not matter.
    """
    if not isinstance(value, str):
        return None
    delta = _delta(value)
    if delta is not None:
        return delta
    when = _http_date(value)
    if when is None:
        return None
    return max(0.0, when - _reference(headers, now))


def _go_duration(value: str) -> float | None:
    if not _GO_DURATION.match(value):
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(value))


def _get(headers: Mapping[str, str], name: str) -> str | None:
    try:
        value = headers.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def parse_ratelimit_reset(headers: Mapping[str, str], now: float) -> float | None:
    """The delay until a rate-limit window resets, in seconds (>= 0), or ``None``.

    Reads, in order: ``RateLimit`` (``t=`` parameter), ``RateLimit-Reset``,
    ``X-RateLimit-Reset-After``, ``X-RateLimit-Reset`` (epoch seconds or milliseconds when
    large, else delta-seconds), ``X-RateLimit-Reset-Requests`` and
    ``X-RateLimit-Reset-Tokens`` (the longest of the two).
    """
    rl = _get(headers, "RateLimit")
    if rl is not None:
        m = _RL_RESET.search(rl)
        if m:
            return float(m.group(1))
    for name in ("RateLimit-Reset", "X-RateLimit-Reset-After"):
        v = _get(headers, name)
        if v is not None:
            d = _delta(v)
            if d is not None:
                return d
    v = _get(headers, "X-RateLimit-Reset")
    if v is not None:
        d = _delta(v)
        if d is not None:
            if d >= _EPOCH_MILLIS:
                d /= 1000.0
            if d >= _EPOCH_SECONDS:
                return max(0.0, d - _reference(headers, now))
            return d
    best: float | None = None
    for name in ("X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens"):
        v = _get(headers, name)
        if v is not None:
            d = _go_duration(v)
            if d is not None and (best is None or d > best):
                best = d
    return best


def _exhausted(headers: Mapping[str, str]) -> bool:
    """Whether the rate-limit headers say no request is left in the window."""
    rl = _get(headers, "RateLimit")
    if rl is not None:
        m = _RL_REMAINING.search(rl)
        if m:
            return int(m.group(1)) == 0
    for name in ("RateLimit-Remaining", "X-RateLimit-Remaining"):
        v = _get(headers, name)
        if v is not None:
            return v.strip() == "0"
    return False


def delay_hint(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """The delay a failed response asks for before the next attempt, or ``None``.

    ``Retry-After`` wins; a rate-limit reset counts only on a 429 or when the headers say the
    window is exhausted (a reset time alone is no reason to wait). Never raises.
    """
    try:
        hint = parse_retry_after(_get(headers, "Retry-After"), now, headers)
        if hint is None and (status == 429 or _exhausted(headers)):
            hint = parse_ratelimit_reset(headers, now)
    except Exception:  # pragma: no cover - the parsers above are total; belt and braces
        return None
    if hint is None or not math.isfinite(hint):
        return None
    return hint
