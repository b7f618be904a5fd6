"""What a MockServer route answers: scripts, random faults, cacheable resources, rate limits.

Every responder is synchronous and returns a :class:`Reply`; waiting and faults on the
wire are the job of :func:`resilient_http.testing._reply.play`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from aiohttp.web_request import BaseRequest

from resilient_http.testing._reply import HeaderItems, Reply, seconds

__all__ = [
    "Responder",
    "Script",
    "RandomFaults",
    "TokenBucket",
    "OutageWindow",
    "Route",
    "builtin_reply",
]


class Responder(Protocol):
    """Chooses the reply of one request of a route."""

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        """``wall`` is the server clock's time as epoch seconds."""
        ...


class Script:
    """Plays replies in order; then repeats the last one or answers 500."""

    __slots__ = ("label", "played", "repeat_last", "replies")

    def __init__(self, replies: tuple[Reply, ...], repeat_last: bool, label: str) -> None:
        self.replies = replies
        self.repeat_last = repeat_last
        self.played = 0
        self.label = label

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        index = self.played
        self.played = index + 1
        if index < len(self.replies):
            return self.replies[index]
        if self.repeat_last:
            return self.replies[-1]
        return Reply(
            500,
            headers={"X-Mock-Script-Exhausted": "1"},
            body=f"MockServer: the script of {self.label} is exhausted "
            f"({len(self.replies)} replies, this is request {index + 1})",
        )


def _ratio(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number within 0..1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0..1, got {value!r}")
    return float(value)


class RandomFaults:
    """A seeded random mix of errors, resets, truncated bodies, slow bodies and latency."""

    __slots__ = ("_cuts", "_latency", "_replies", "_rng", "_tail", "_tail_latency", "success")

    def __init__(
        self,
        *,
        error_ratio: float,
        error_status: int,
        reset_ratio: float,
        truncate_ratio: float,
        latency: float | timedelta | tuple[float, float],
        seed: int | str | None,
        success: Reply,
        slow_ratio: float = 0.0,
        slow_body: float | timedelta = 1.0,
        tail_ratio: float = 0.0,
        tail_latency: float | timedelta | tuple[float, float] = (0.5, 1.0),
    ) -> None:
        error = _ratio("error_ratio", error_ratio)
        reset = _ratio("reset_ratio", reset_ratio)
        truncate = _ratio("truncate_ratio", truncate_ratio)
        slow = _ratio("slow_ratio", slow_ratio)
        if error + reset + truncate + slow > 1.0 + 1e-9:
            raise ValueError(
                "error_ratio + reset_ratio + truncate_ratio + slow_ratio must be <= 1, got "
                f"{error} + {reset} + {truncate} + {slow}"
            )
        if truncate and not success.payload:
            raise ValueError("truncate_ratio > 0 needs a success reply with a body")
        if slow and len(success.payload) < 2:
            raise ValueError("slow_ratio > 0 needs a success reply with a body of 2 bytes or "
                             "more")
        slow_s = seconds("slow_body", slow_body)
        self._latency = _span("latency", latency)
        self._tail = _ratio("tail_ratio", tail_ratio)
        self._tail_latency = _span("tail_latency", tail_latency)
        self._rng = random.Random(seed)
        self._cuts = (reset, reset + truncate, reset + truncate + error,
                      reset + truncate + error + slow)
        self.success = success
        payload = success.payload
        self._replies = (
            Reply(reset=True),
            Reply(success.status, headers=success.header_items, body=payload, truncate=True),
            Reply(error_status, body=f"MockServer: random fault {error_status}"),
            success,
            # the first half with the headers, the second half slow_body seconds later
            Reply(success.status, headers=success.header_items, body=payload,
                  drip=(max(1, (len(payload) + 1) // 2), slow_s)) if slow else success,
        )

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        roll = self._rng.random()
        reset, truncate, error, slow = self._cuts
        if roll < reset:
            reply = self._replies[0]
        elif roll < truncate:
            reply = self._replies[1]
        elif roll < error:
            reply = self._replies[2]
        elif roll < slow:
            reply = self._replies[4]
        else:
            reply = self._replies[3]
        low, high = self._latency
        if self._tail and self._rng.random() < self._tail:
            low, high = self._tail_latency
        latency = low if low == high else self._rng.uniform(low, high)
        if latency:
            return Reply(reply.status, headers=reply.header_items, body=reply.payload,
                         delay=reply.delay_seconds + latency, drip=reply.drip,
                         truncate=reply.truncate, reset=reply.reset)
        return reply


def _span(name: str, value: float | timedelta | tuple[float, float]) -> tuple[float, float]:
    """Seconds, fixed or ``(low, high)`` for a uniform draw, as ``(low, high)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise TypeError(f"{name} must be seconds or (low, high), got {value!r}")
        low, high = seconds(f"{name} low", value[0]), seconds(f"{name} high", value[1])
        if low > high:
            raise ValueError(f"{name} low must be <= high, got {value!r}")
        return (low, high)
    fixed = seconds(name, value)
    return (fixed, fixed)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _ceil(value: float) -> int:
    return math.ceil(value - 1e-9)


class TokenBucket:
    """A server-side token bucket: ``rate`` requests per ``per`` seconds, ``burst`` deep."""

    __slots__ = ("burst", "per", "rate", "retry_after", "tokens", "updated")

    def __init__(self, rate: float, per: float | timedelta, burst: float | None,
                 retry_after: float | str | None) -> None:
        self.tokens = -1.0
        self.updated: float | None = None
        self.retry_after: int | str | None = None
        self.configure(rate, per, burst, retry_after, None)

    def configure(self, rate: float, per: float | timedelta, burst: float | None,
                  retry_after: float | str | None, now: float | None) -> None:
        """Set the limits; tokens already earned by ``now`` are kept, capped at the new
        burst. A new bucket starts full."""
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            raise TypeError(f"rate must be a number of requests, got {rate!r}")
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        per_s = seconds("per", per, allow_zero=False)
        if burst is None:
            burst_n = max(1.0, float(rate))
        elif not isinstance(burst, (int, float)) or isinstance(burst, bool):
            raise TypeError(f"burst must be a number of requests or None, got {burst!r}")
        elif not math.isfinite(burst) or burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        else:
            burst_n = float(burst)
        fixed: int | str | None
        if isinstance(retry_after, str) or retry_after is None:
            fixed = retry_after
        else:
            fixed = _ceil(seconds("retry_after", retry_after))
        if self.tokens >= 0 and now is not None:
            self._refill(now)
        self.rate, self.per, self.burst, self.retry_after = float(rate), per_s, burst_n, fixed
        self.tokens = burst_n if self.tokens < 0 else min(self.tokens, burst_n)

    def _refill(self, now: float) -> None:
        updated = self.updated
        if updated is None or now > updated:
            if updated is not None:
                self.tokens = min(self.burst, self.tokens + (now - updated) * self.rate / self.per)
            self.updated = now

    def take(self, now: float, wall: float) -> tuple[bool, HeaderItems]:
        """Take one token. Returns (allowed, the rate-limit headers of the response)."""
        self._refill(now)
        allowed = self.tokens >= 1.0 - 1e-9
        if allowed:
            self.tokens = max(0.0, self.tokens - 1.0)
        seconds_per_token = self.per / self.rate
        to_full = (self.burst - self.tokens) * seconds_per_token
        remaining = int(self.tokens + 1e-9)
        reset = _ceil(to_full)
        headers: HeaderItems = (
            ("RateLimit-Policy", f'"default";q={_fmt(self.rate)};w={_fmt(self.per)}'),
            ("RateLimit", f'"default";r={remaining};t={reset}'),
            ("X-RateLimit-Limit", _fmt(self.rate)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(_ceil(wall + to_full))),
        )
        if allowed:
            return True, headers
        if self.retry_after is None:
            retry_after: int | str = max(1, _ceil((1.0 - self.tokens) * seconds_per_token))
        else:
            retry_after = self.retry_after
        return False, (*headers, ("Retry-After", str(retry_after)))


RATE_LIMITED = Reply(429, json={"error": "rate limited"})
"""What an excess request on a rate-limited route gets (plus the rate-limit headers)."""

DEFAULT_OK = Reply(200, json={"ok": True})
"""What a route with a rate limit and no responder of its own answers."""


class OutageWindow:
    """A time window in which a route answers ``reply`` to everything.

    ``start`` and ``end`` are seconds after ``origin`` on the server's clock (``end``
    ``None``: no end). Requests are counted by when they arrive: before, during and after.
    """

    __slots__ = ("after", "before", "during", "end", "origin", "reply", "start")

    def __init__(self, origin: float, start: float, end: float | None, reply: Reply) -> None:
        self.origin = origin
        self.start = origin + start
        self.end = None if end is None else origin + end
        self.reply = reply
        self.before = 0
        self.during = 0
        self.after = 0

    def check(self, now: float) -> Reply | None:
        """Count one arrival at ``now``; the outage reply when it falls in the window."""
        if now < self.start:
            self.before += 1
            return None
        end = self.end
        if end is None or now < end:
            self.during += 1
            return self.reply
        self.after += 1
        return None

    def stats(self) -> dict[str, Any]:
        """Bounds (seconds after the origin) and arrival counts, as a JSON-ready dict."""
        return {
            "start": self.start - self.origin,
            "end": None if self.end is None else self.end - self.origin,
            "before": self.before,
            "during": self.during,
            "after": self.after,
        }


class Route:
    """A configured (method, path): an optional responder, an optional rate limit and an
    optional outage window (which wins over both)."""

    __slots__ = ("limiter", "outage", "responder")

    def __init__(self) -> None:
        self.responder: Responder | None = None
        self.limiter: TokenBucket | None = None
        self.outage: OutageWindow | None = None


_OK = Reply(200, body=b"ok")
_NOT_FOUND = Reply(404, body=b"MockServer: no route for this path")


def builtin_reply(request: BaseRequest, body: bytes, configured: bool) -> Reply:
    """The built-in routes: ``/ok``, ``/status/{code}``, ``/anything[/...]``, else 404.

    ``configured``: a route exists for the path (a rate limit only), so answer 200 instead
    of 404.
    """
    path = request.path
    if path == "/ok":
        return _OK
    if path.startswith("/status/"):
        code = path[8:]
        if code.isdigit() and 200 <= int(code) <= 599:
            status = int(code)
            return Reply(status) if status in (204, 304) else Reply(status, body=code)
        return Reply(400, body=f"MockServer: bad status {code!r}, expected 200..599")
    if path == "/anything" or path.startswith("/anything/"):
        return Reply(200, json=echo(request, body))
    return DEFAULT_OK if configured else _NOT_FOUND


def echo(request: BaseRequest, body: bytes) -> dict[str, Any]:
    """The JSON document ``/anything`` answers: the request as the server saw it."""
    query = request.query
    args: dict[str, str | list[str]] = {}
    for key in query:
        if key not in args:
            values = query.getall(key)
            args[key] = values[0] if len(values) == 1 else values
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    parsed: Any = None
    if body and request.content_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    return {
        "method": request.method,
        "path": request.path,
        "url": str(request.rel_url),
        "query": [[k, v] for k, v in query.items()],
        "args": args,
        "headers": headers,
        "body": body.decode("utf-8", errors="replace"),
        "json": parsed,
    }


def reply_from_config(name: str, value: object) -> Reply:
    """A :class:`Reply` from its JSON form: an int status or a dict of Reply arguments."""
    if isinstance(value, Mapping):
        options = dict(value)
        if isinstance(options.get("drip"), list):
            options["drip"] = tuple(options["drip"])
        try:
            return Reply(**options)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return Reply(value)
    raise TypeError(f"{name} must be a status int or an object of Reply options, got {value!r}")
