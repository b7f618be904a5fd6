"""Pure parsing of the wait and rate-limit signals a server sends. No I/O, no clock: the caller
passes the wall-clock time (epoch seconds) needed to turn dates into delays. Both the
``RateLimit`` layer (:func:`parse_limits`) and ``Retry``'s classifier (:func:`delay_hint`)
read headers through this module only.

Understood forms (the first one present wins, per value):

- IETF draft, structured fields (draft-ietf-httpapi-ratelimit-headers-07 and later)::

      RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400
      RateLimit: "burst";r=50;t=30

  ``q`` quota units per ``w`` seconds; ``r`` units remaining, ``t`` seconds until the quota
  resets. Several items: the most restrictive is used (the lowest ``q/w``; the lowest ``r``).
- IETF earlier drafts: ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``
  (delta seconds), ``RateLimit-Policy: 100;w=60``, and the dictionary form
  ``RateLimit: limit=100, remaining=50, reset=30``.
- De-facto: ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` / ``X-RateLimit-Limit``
  (GitHub; Twitter spells them ``X-Rate-Limit-*``). A reset above 10⁹ is an epoch time in
  seconds (above 10¹² in milliseconds), else a delay in seconds; an epoch is measured against
  the response's ``Date`` header when it has a valid one that differs from the local clock by
  more than 2 s (its resolution and transit), so a skewed local clock does not stretch or
  cancel the pause. Go-style durations
  (``1m30s``, ``250ms``) are understood too. ``X-RateLimit-Reset-After`` (Discord) is a
  delay. OpenAI's ``X-RateLimit-Reset-Requests`` / ``-Tokens`` durations count for
  :func:`delay_hint` only.
- ``Retry-After`` (RFC 9110 §10.2.3): delay-seconds (fractions tolerated) or an HTTP-date
  (IMF-fixdate, RFC 850 or asctime, the last one in GMT). An HTTP-date is measured against
  the response's own ``Date`` header when it has a valid one, so a skewed local clock does
  not stretch or shrink the wait (both have one-second resolution, so nothing is lost).

Numbers are ASCII digits with an optional fraction; a delay over ten years is nonsense and
ignored. Malformed values are ignored (treated as absent); nothing here raises on any input.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Limits",
    "parse_limits",
    "delay_hint",
    "parse_retry_after",
    "parse_ratelimit",
    "parse_policy",
    "parse_reset",
    "parse_number",
]

_EPOCH_S = 1e9  # a reset above this is an epoch time in seconds (2001-09-09)
_EPOCH_MS = 1e12  # ... and above this, in milliseconds
_MAX_DELAY = 10 * 365 * 86400.0  # anything longer is nonsense, ignored
_DATE_SLACK = 2.0  # seconds: a Date this close to our clock is no sign of skew

_NUMBER = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*")
_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class Limits:
    """What one response says about the client's rate limit. Every field may be ``None``.

    Attributes:
        remaining: requests left in the current quota window.
        reset: seconds from now until that window resets (the quota refills).
        quota: requests allowed per ``window`` (the declared policy).
        window: length of the policy window, in seconds.
        retry_after: seconds to wait before the next request (``Retry-After``).
    """

    __slots__ = ("remaining", "reset", "quota", "window", "retry_after")

    def __init__(
        self,
        remaining: float | None = None,
        reset: float | None = None,
        quota: float | None = None,
        window: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.remaining = remaining
        self.reset = reset
        self.quota = quota
        self.window = window
        self.retry_after = retry_after

    @property
    def rate(self) -> float | None:
        """The declared rate, requests per second (``quota / window``), if known."""
        if self.quota is None or self.window is None or self.window <= 0:
            return None
        return self.quota / self.window

    def __bool__(self) -> bool:
        return not (
            self.remaining is None
            and self.reset is None
            and self.quota is None
            and self.retry_after is None
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limits):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={getattr(self, k)!r}" for k in self.__slots__ if getattr(self, k) is not None
        )
        return f"Limits({fields})"


def parse_number(value: Any) -> float | None:
    """A non-negative finite decimal number, or ``None``."""
    if not isinstance(value, str):
        return None
    m = _NUMBER.fullmatch(value)
    if m is None:
        return None
    n = float(m.group(1))
    return n if math.isfinite(n) else None


def _delay(seconds: float) -> float | None:
    """``seconds`` if it is a sane delay (finite, at most ten years), else ``None``; a time
    already past is 0."""
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds) if seconds <= _MAX_DELAY else None


def _duration(value: str) -> float | None:
    """Seconds from a number or a Go-style duration (``1m30s``, ``250ms``)."""
    n = parse_number(value)
    if n is not None:
        return n
    text = value.strip()
    if not text or len(text) > 64:
        return None
    pos = 0
    total = 0.0
    for m in _GO_DURATION.finditer(text):
        if m.start() != pos:
            return None
        pos = m.end()
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
    return total if pos == len(text) else None


def _field(headers: Mapping[str, str], name: str) -> str | None:
    """One header's value (repeated fields joined by ``", "``), or ``None``; never raises."""
    try:
        getall = getattr(headers, "getall", None)
        if getall is None:
            value = headers.get(name)
        else:
            values = getall(name, None)
            if not values:
                return None
            if len(values) == 1:
                value = values[0]
            else:
                value = ", ".join(v for v in values if isinstance(v, str))
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP-date (IMF-fixdate, RFC 850 or asctime), or ``None``."""
    if len(value) > 64:
        return None
    try:
        parts = email.utils.parsedate_tz(value)
        if parts is None:
            return None
        if parts[9] is None:  # asctime has no zone: it is GMT by definition
            parts = (*parts[:9], 0)
        return float(email.utils.mktime_tz(parts))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_reset(value: Any, wall_now: float) -> float | None:
    """Seconds until a reset, from delta seconds, a duration, or an epoch time (s or ms)."""
    if not isinstance(value, str):
        return None
    n = _duration(value)
    if n is None:
        return None
    if n >= _EPOCH_MS:
        n = n / 1000.0 - wall_now
    elif n >= _EPOCH_S:
        n = n - wall_now
    return _delay(n)


def parse_retry_after(
    value: Any, wall_now: float, headers: Mapping[str, str] | None = None
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), or ``None``.

    Args:
        value: the header value: ``"120"`` (fractions tolerated) or an HTTP-date.
        wall_now: the current wall-clock time, epoch seconds.
        headers: the response headers; their ``Date`` (if valid) replaces ``wall_now`` as
            the reference for an HTTP-date. A date in the past gives ``0.0``.
    """
    if not isinstance(value, str):
        return None
    n = parse_number(value)
    if n is not None:
        return _delay(n)
    when = _http_date(value.strip())
    if when is None:
        return None
    return _delay(when - (wall_now if headers is None else _server_now(headers, wall_now)))


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double-quoted strings (structured fields, RFC 8941)."""
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for pos, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:pos])
            start = pos + 1
    parts.append(text[start:])
    return parts


def _members(text: str) -> list[tuple[str, dict[str, str]]]:
    """Structured-field list members: (bare item, parameters)."""
    out: list[tuple[str, dict[str, str]]] = []
    for member in _split(text, ","):
        pieces = _split(member, ";")
        item = pieces[0].strip()
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            name, eq, val = piece.partition("=")
            name = name.strip().lower()
            if name:
                params[name] = val.strip() if eq else "?1"
        out.append((item, params))
    return out


def parse_ratelimit(value: Any) -> tuple[float | None, float | None] | None:
    """``(remaining, reset)`` from a ``RateLimit`` field (structured list or old dictionary
    form); the most restrictive item when there are several. ``None`` if nothing usable."""
    if not isinstance(value, str) or len(value) > 4096:
        return None
    members = _members(value)
    if any("=" in item for item, _ in members):
        # draft-03 dictionary form: "limit=100, remaining=50, reset=30"
        found: dict[str, float | None] = {}
        for item, _ in members:
            name, _eq, val = item.partition("=")
            found.setdefault(name.strip().lower(), parse_number(val))
        r, t = found.get("remaining"), found.get("reset")
        return None if r is None and t is None else (r, t)
    best: tuple[float | None, float | None] | None = None
    for _item, params in members:
        r = parse_number(params.get("r"))
        t = parse_number(params.get("t"))
        if r is None and t is None:
            continue
        if best is None or (r is not None and (best[0] is None or r < best[0])):
            best = (r, t)
        elif r is not None and r == best[0] and t is not None:
            best = (r, t if best[1] is None else max(best[1], t))
    return best


def parse_policy(value: Any) -> tuple[float, float] | None:
    """``(quota, window)`` from a ``RateLimit-Policy`` field: the item with the lowest
    ``quota / window``. ``None`` if nothing usable."""
    if not isinstance(value, str) or len(value) > 4096:
        return None
    best: tuple[float, float] | None = None
    for item, params in _members(value):
        q = parse_number(params["q"]) if "q" in params else parse_number(item)
        w = parse_number(params.get("w"))
        if q is None or w is None or q <= 0 or w <= 0:
            continue
        if best is None or q / w < best[0] / best[1]:
            best = (q, w)
    return best


def parse_limits(
    headers: Mapping[str, str], wall_now: float, *, retry_after: bool = True
) -> Limits:
    """Everything the headers say about the rate limit (a :class:`Limits`, possibly empty).

    ``wall_now`` is the current wall-clock time in epoch seconds (for dates and epoch resets).
    A valid ``Date`` header is the reference for an HTTP-date ``Retry-After``, and for an
    epoch reset when it differs from ``wall_now`` by more than 2 s: the wait is the same
    whatever the skew between the two clocks.
    ``retry_after=False`` skips ``Retry-After`` (it means nothing on a success).
    """
    try:
        return _parse_limits(headers, wall_now, retry_after)
    except Exception:  # defensive: a header must never break a request
        return Limits()


def _server_now(headers: Mapping[str, str], wall_now: float) -> float:
    """The server's clock (its valid ``Date`` header), else ``wall_now``."""
    date = _field(headers, "Date")
    server_now = None if date is None else _http_date(date)
    return wall_now if server_now is None else server_now


def _reset_reference(headers: Mapping[str, str], wall_now: float) -> float:
    """The clock an epoch reset is measured against: ours while it agrees with the server's
    ``Date`` within that header's one-second resolution (and a second of transit), else the
    server's, whose clock set the reset."""
    server_now = _server_now(headers, wall_now)
    return wall_now if abs(wall_now - server_now) <= _DATE_SLACK else server_now


def _parse_limits(headers: Mapping[str, str], wall_now: float, want_retry: bool) -> Limits:
    limits = Limits()
    rl = _field(headers, "RateLimit")
    if rl is not None:
        parsed = parse_ratelimit(rl)
        if parsed is not None:
            limits.remaining, limits.reset = parsed
    policy = _field(headers, "RateLimit-Policy")
    if policy is not None:
        qw = parse_policy(policy)
        if qw is not None:
            limits.quota, limits.window = qw
    for prefix in ("RateLimit-", "X-RateLimit-", "X-Rate-Limit-"):
        if limits.remaining is None:
            limits.remaining = parse_number(_field(headers, prefix + "Remaining"))
        if limits.reset is None:
            raw = _field(headers, prefix + "Reset")
            if raw is not None:
                limits.reset = (
                    parse_number(raw)
                    if prefix == "RateLimit-"
                    else parse_reset(raw, _reset_reference(headers, wall_now))
                )
    if limits.reset is None:
        limits.reset = parse_number(_field(headers, "X-RateLimit-Reset-After"))
    if limits.reset is not None:
        limits.reset = _delay(limits.reset)  # over ten years: nonsense, ignored
    if want_retry:
        limits.retry_after = parse_retry_after(_field(headers, "Retry-After"), wall_now, headers)
    return limits


def delay_hint(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """The delay a failed response asks for before the next attempt, seconds, or ``None``.

    ``Retry-After`` wins; a rate-limit reset counts only on a 429 or when the headers say the
    window is exhausted (a reset time alone is no reason to wait). OpenAI's
    ``X-RateLimit-Reset-Requests`` / ``-Tokens`` (the longer one) come last. Never raises.
    """
    limits = parse_limits(headers, now)
    if limits.retry_after is not None:
        return limits.retry_after
    if status != 429 and limits.remaining != 0:
        return None
    if limits.reset is not None:
        return limits.reset
    best: float | None = None
    for name in ("X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens"):
        value = _field(headers, name)
        d = None if value is None else _duration(value)
        if d is not None and (best is None or d > best):
            best = d
    return None if best is None else _delay(best)
