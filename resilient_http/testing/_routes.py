"""What a MockServer route answers: scripts, random faults, cacheable resources, rate limits.

Every responder is synchronous and returns a :class:`Reply`; waiting and faults on the
wire are the job of :func:`resilient_http.testing._reply.play`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from typing import Any, Protocol

from aiohttp.web_request import BaseRequest

from resilient_http.testing._reply import HeaderItems, Reply, header_items, seconds

__all__ = [
    "Responder",
    "Script",
    "RandomFaults",
    "CacheableResource",
    "TokenBucket",
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
    """A seeded random mix of errors, resets, truncated bodies and latency."""

    __slots__ = ("_cuts", "_latency", "_replies", "_rng", "success")

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
    ) -> None:
        error = _ratio("error_ratio", error_ratio)
        reset = _ratio("reset_ratio", reset_ratio)
        truncate = _ratio("truncate_ratio", truncate_ratio)
        if error + reset + truncate > 1.0 + 1e-9:
            raise ValueError(
                "error_ratio + reset_ratio + truncate_ratio must be <= 1, got "
                f"{error} + {reset} + {truncate}"
            )
        if truncate and not success.payload:
            raise ValueError("truncate_ratio > 0 needs a success reply with a body")
        if isinstance(latency, (tuple, list)):
            if len(latency) != 2:
                raise TypeError(f"latency must be seconds or (low, high), got {latency!r}")
            low, high = seconds("latency low", latency[0]), seconds("latency high", latency[1])
            if low > high:
                raise ValueError(f"latency low must be <= high, got {latency!r}")
            self._latency: tuple[float, float] = (low, high)
        else:
            fixed = seconds("latency", latency)
            self._latency = (fixed, fixed)
        self._rng = random.Random(seed)
        self._cuts = (reset, reset + truncate, reset + truncate + error)
        self.success = success
        self._replies = (
            Reply(reset=True),
            Reply(success.status, headers=success.header_items, body=success.payload,
                  truncate=True),
            Reply(error_status, body=f"MockServer: random fault {error_status}"),
            success,
        )

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        roll = self._rng.random()
        reset, truncate, error = self._cuts
        if roll < reset:
            reply = self._replies[0]
        elif roll < truncate:
            reply = self._replies[1]
        elif roll < error:
            reply = self._replies[2]
        else:
            reply = self._replies[3]
        low, high = self._latency
        latency = low if low == high else self._rng.uniform(low, high)
        if latency:
            return Reply(reply.status, headers=reply.header_items, body=reply.payload,
                         delay=reply.delay_seconds + latency, drip=reply.drip,
                         truncate=reply.truncate, reset=reply.reset)
        return reply


def _http_date(name: str, value: object) -> tuple[str, float]:
    """An HTTP-date header value and its epoch seconds, from a datetime, epoch or str."""
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        when = when.astimezone(timezone.utc).replace(microsecond=0)
        return format_datetime(when, usegmt=True), when.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        epoch = float(math.floor(value))
        return formatdate(epoch, usegmt=True), epoch
    if isinstance(value, str):
        try:
            return value, parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an HTTP-date, got {value!r}") from None
    raise TypeError(f"{name} must be a datetime, epoch seconds or an HTTP-date string, "
                    f"got {value!r}")


def _opt_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {value!r}")
    return value


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2) of an ``If-None-Match`` list against ``etag``."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class CacheableResource:
    """A resource with validators that answers conditional requests with 304.

    Returned by :meth:`MockServer.cacheable`; change it at runtime with :meth:`update`
    (for example a new body and ETag, to see a cache revalidate and get a 200).

    Attributes mirror the arguments of :meth:`MockServer.cacheable`.
    """

    __slots__ = (
        "_body",
        "_cache_control",
        "_etag",
        "_expires",
        "_extra",
        "_last_modified",
        "_lm_epoch",
        "_vary",
        "_vary_names",
        "version",
    )

    def __init__(self, body: bytes | str, **options: Any) -> None:
        self.version = 0
        """How many times :meth:`update` changed the resource."""
        self._body = b""
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._lm_epoch: float | None = None
        self._cache_control: str | None = None
        self._vary: str | None = None
        self._vary_names: tuple[str, ...] = ()
        self._expires: str | timedelta | None = None
        self._extra: HeaderItems = ()
        self._set(body=body, **options)
        self.version = 0

    @property
    def body(self) -> bytes:
        """The base body (before the ``Vary`` echo)."""
        return self._body

    @property
    def etag(self) -> str | None:
        """The ``ETag`` header value, quotes included."""
        return self._etag

    def update(self, **changes: Any) -> None:
        """Change any of ``body``, ``etag``, ``last_modified``, ``cache_control``, ``vary``,
        ``expires``, ``extra_headers``; the others keep their values. Pass ``None`` to
        drop a validator or header."""
        self._set(**changes)

    def _set(self, **changes: Any) -> None:
        unknown = set(changes) - {"body", "etag", "last_modified", "cache_control", "vary",
                                  "expires", "extra_headers"}
        if unknown:
            raise TypeError(f"unknown cacheable option(s): {', '.join(sorted(unknown))}")
        if "body" in changes:
            body = changes["body"]
            if isinstance(body, str):
                body = body.encode("utf-8")
            if not isinstance(body, (bytes, bytearray)):
                raise TypeError(f"body must be bytes or str, got {body!r}")
            self._body = bytes(body)
        if "etag" in changes:
            etag = _opt_str("etag", changes["etag"])
            if etag is not None and not etag.removeprefix("W/").startswith('"'):
                etag = f'"{etag}"'
            self._etag = etag
        if "last_modified" in changes:
            value = changes["last_modified"]
            if value is None:
                self._last_modified, self._lm_epoch = None, None
            else:
                self._last_modified, self._lm_epoch = _http_date("last_modified", value)
        if "cache_control" in changes:
            self._cache_control = _opt_str("cache_control", changes["cache_control"])
        if "vary" in changes:
            self._vary = _opt_str("vary", changes["vary"])
            self._vary_names = tuple(
                n.strip() for n in (self._vary or "").split(",") if n.strip() not in ("", "*")
            )
        if "expires" in changes:
            expires = changes["expires"]
            if isinstance(expires, (datetime, int, float)) and not isinstance(expires, bool):
                expires = _http_date("expires", expires)[0]
            elif expires is not None and not isinstance(expires, (str, timedelta)):
                raise TypeError("expires must be an HTTP-date str, a datetime, epoch seconds "
                                f"or a timedelta from now, got {expires!r}")
            self._expires = expires
        if "extra_headers" in changes:
            self._extra = header_items("extra_headers", changes["extra_headers"])
        self.version += 1

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        headers: list[tuple[str, str]] = []
        payload = self._body
        etag = self._etag
        if self._vary_names:
            variant = "\n".join(
                f"{name.lower()}: {request.headers.get(name, '')}" for name in self._vary_names
            )
            payload = payload + b"\n" + variant.encode("utf-8")
            if etag is not None:
                # Each representation gets its own strong validator, as RFC 9110 requires.
                digest = hashlib.sha1(variant.encode("utf-8")).hexdigest()[:8]
                etag = f'{etag[:-1]}-{digest}"'
        if etag is not None:
            headers.append(("ETag", etag))
        if self._last_modified is not None:
            headers.append(("Last-Modified", self._last_modified))
        if self._cache_control is not None:
            headers.append(("Cache-Control", self._cache_control))
        if self._vary is not None:
            headers.append(("Vary", self._vary))
        if isinstance(self._expires, timedelta):
            headers.append(("Expires", formatdate(wall + self._expires.total_seconds(),
                                                  usegmt=True)))
        elif self._expires is not None:
            headers.append(("Expires", self._expires))
        headers.extend(self._extra)
        if request.method in ("GET", "HEAD") and self._not_modified(request, etag):
            return Reply(304, headers=headers)
        return Reply(200, headers=headers, body=payload)

    def _not_modified(self, request: BaseRequest, etag: str | None) -> bool:
        inm = request.headers.get("If-None-Match")
        if inm is not None:  # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
            return etag is not None and _etag_matches(inm, etag)
        ims = request.headers.get("If-Modified-Since")
        if ims is None or self._lm_epoch is None:
            return False
        try:
            return self._lm_epoch <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False


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


class Route:
    """A configured (method, path): an optional responder and an optional rate limit."""

    __slots__ = ("limiter", "responder")

    def __init__(self) -> None:
        self.responder: Responder | None = None
        self.limiter: TokenBucket | None = None


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
