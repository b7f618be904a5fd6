"""``MockServer``: a real ``aiohttp.web`` server on loopback that plays scripted replies.

Every test and benchmark of the project talks to it over real sockets: scripted statuses,
delays, slow bodies, truncated bodies, connection resets, rate limits, cacheable resources
and random faults, and it records every request it received.

Run it in its own process with ``python -m resilient_http.testing.server`` (or ``python -m
resilient_http.testing``); see :mod:`resilient_http.testing.process`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import formatdate
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest
from yarl import URL

from resilient_http._clock import LOOP_CLOCK, Clock
from resilient_http.testing import _config
from resilient_http.testing._cacheable import CacheableResource
from resilient_http.testing._recording import RecordedRequest, Recorder
from resilient_http.testing._reply import HeaderItems, Reply, as_reply, play, seconds
from resilient_http.testing._routes import (
    DEFAULT_OK,
    RATE_LIMITED,
    OutageWindow,
    RandomFaults,
    Responder,
    Route,
    Script,
    TokenBucket,
    builtin_reply,
)

__all__ = ["MockServer", "RecordedRequest", "Reply", "CacheableResource", "CONTROL_PREFIX"]

CONTROL_PREFIX = "/__control/"
"""Paths under this prefix are the control API (configure, stats, reset); never recorded."""


class MockServer:
    """A real HTTP/1.1 server on loopback that plays scripted replies and records requests.

    Use ``async with MockServer() as server:`` (or :meth:`start` / :meth:`close`), then
    point a client at ``server.url("/path")``.

    Routes are exact paths (the query is ignored), for one method or for any method
    (``method=None``, the default; a route for the exact method wins). Configuring a path
    again replaces what it answers and keeps its rate limit. Paths nobody configured get the
    built-in routes: ``/ok`` (200, body ``ok``), ``/status/{code}`` (that status),
    ``/anything`` and ``/anything/...`` (200, the request echoed as JSON: ``method``,
    ``path``, ``url``, ``query`` as ``[name, value]`` pairs, ``args`` as a dict whose
    repeated names map to lists, ``headers``, ``body`` as text, ``json``); anything else is
    404. A configured path asked with a method it has no route for answers 405.

    Args:
        clock: the clock delays, drips, rate limits and recorded times use; pass a
            :class:`~resilient_http.testing.FakeClock` to drive time by hand. With a
            custom clock the ``Date`` header follows it too. Default: the event loop's clock.
        host: the address to listen on. Default ``"127.0.0.1"``.
        port: the TCP port; ``0`` (the default) picks a free one.
        record: keep a :class:`RecordedRequest` for each request (``server.requests``).
            Counters are always kept. Default ``True``.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
    ) -> None:
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must implement now(), sleep() and call_at(), got {clock!r}")
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int within 0..65535, got {port!r}")
        self._clock: Clock = clock if clock is not None else LOOP_CLOCK
        self._custom_clock = clock is not None
        self._host = host
        self._port = port
        self._recorder = Recorder(record)
        self._runner: web.ServerRunner | None = None
        self._origin: URL | None = None
        self._epoch_offset = 0.0
        self._routes: dict[str, dict[str, Route]] = {}
        self._inflight: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port and start serving. Raises ``RuntimeError`` if already started."""
        if self._runner is not None:
            raise RuntimeError("MockServer is already started")
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        self._origin = URL.build(scheme="http", host=self._host, port=self._port)
        self._epoch_offset = time.time() - self._clock.now()

    async def close(self) -> None:
        """Stop serving: abort handlers still sleeping, close all connections. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._inflight):
            task.cancel()
        await runner.cleanup()
        self._recorder.cancel_waiters()

    async def __aenter__(self) -> MockServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def origin(self) -> URL:
        """``http://host:port`` of the running server."""
        if self._origin is None:
            raise RuntimeError("MockServer is not started")
        return self._origin

    @property
    def port(self) -> int:
        """The TCP port (the chosen one once started)."""
        return self._port

    @property
    def clock(self) -> Clock:
        """The clock the server uses."""
        return self._clock

    def url(self, path: str = "/") -> URL:
        """The absolute URL of ``path`` (which may carry a query string) on this server."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        return URL(f"{self.origin}{path}")

    def wall_time(self) -> float:
        """The server clock's current time as epoch seconds (used for ``Date``, resets)."""
        return self._clock.now() + self._epoch_offset

    # -- configuration -----------------------------------------------------------------

    def script(
        self,
        path: str,
        *replies: Reply | int,
        method: str | None = None,
        repeat_last: bool = True,
    ) -> None:
        """Answer ``path`` with ``replies`` in order (an ``int`` is ``Reply(status)``).

        Once the script is exhausted the last reply repeats (``repeat_last=True``, the
        default); with ``repeat_last=False`` each extra request gets a 500 with the header
        ``X-Mock-Script-Exhausted: 1`` and a body saying so, so over-consumption shows.
        """
        if not replies:
            raise ValueError("script needs at least one reply")
        played = tuple(as_reply(f"replies[{i}]", r) for i, r in enumerate(replies))
        if not isinstance(repeat_last, bool):
            raise TypeError(f"repeat_last must be a bool, got {repeat_last!r}")
        label = f"{method.upper() if method else 'any method'} {path}"
        self._route(path, method).responder = Script(played, repeat_last, label)

    def fail_then_succeed(
        self,
        path: str,
        failures: int = 1,
        status: int = 503,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        success: Reply | int | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer ``failures`` times with ``status`` (and ``headers``, e.g. a Retry-After),
        then ``success`` for ever. Defaults: 1 failure, status 503, success ``Reply(200,
        json={"ok": True})``."""
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
            raise ValueError(f"failures must be an int >= 0, got {failures!r}")
        fail = Reply(status, headers=headers, body=f"MockServer: scripted failure {status}")
        ok = DEFAULT_OK if success is None else as_reply("success", success)
        self.script(path, *([fail] * failures), ok, method=method)

    def rate_limited(
        self,
        path: str,
        rate: float,
        per: float | timedelta = 1.0,
        burst: float | None = None,
        retry_after: float | str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Enforce ``rate`` requests per ``per`` seconds on ``path`` (token bucket, on the
        server's clock, ``burst`` deep, default ``burst = rate``).

        Excess requests get 429 with ``Retry-After`` (whole seconds until a token frees, at
        least 1, or the fixed ``retry_after``: seconds, or a str such as an HTTP-date sent
        verbatim). Every response of the path carries ``RateLimit-Policy:
        "default";q=<rate>;w=<per>``, ``RateLimit: "default";r=<remaining>;t=<seconds until
        the bucket is full>``, ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
        ``X-RateLimit-Reset`` (epoch seconds when the bucket is full). Allowed requests get
        what the path answers otherwise (its script, a built-in route, or 200 ``{"ok":
        true}``). Change or lift the limit with :meth:`set_rate`.
        """
        self._route(path, method).limiter = TokenBucket(rate, per, burst, retry_after)

    def set_rate(
        self,
        path: str,
        rate: float | None,
        *,
        per: float | timedelta | None = None,
        burst: float | None = None,
        retry_after: float | str | None = None,
        method: str | None = None,
    ) -> None:
        """Change the rate limit of ``path`` at runtime; ``rate=None`` lifts it.

        ``per=None`` keeps the current window (1 s for a new limit); ``burst=None`` makes the
        bucket ``rate`` deep. Tokens already earned are kept, capped at the new burst.
        """
        if rate is None:
            route = self._routes.get(path, {}).get(_method_key(method))
            if route is not None:
                route.limiter = None
            return
        route = self._routes.get(path, {}).get(_method_key(method))
        if route is None or route.limiter is None:
            self.rate_limited(path, rate, 1.0 if per is None else per, burst, retry_after,
                              method=method)
        else:
            window = route.limiter.per if per is None else per
            now = self._clock.now() if self._runner is not None else None
            route.limiter.configure(rate, window, burst, retry_after, now)

    def random_faults(
        self,
        path: str,
        *,
        error_ratio: float = 0.0,
        error_status: int = 503,
        reset_ratio: float = 0.0,
        truncate_ratio: float = 0.0,
        latency: float | timedelta | tuple[float, float] = 0.0,
        seed: int | str | None = 0,
        success: Reply | int | None = None,
        method: str | None = None,
        slow_ratio: float = 0.0,
        slow_body: float | timedelta = 1.0,
        tail_ratio: float = 0.0,
        tail_latency: float | timedelta | tuple[float, float] = (0.5, 1.0),
    ) -> None:
        """Answer ``path`` with a seeded random mix: per request, a connection reset with
        probability ``reset_ratio``, a truncated ``success`` body with ``truncate_ratio``,
        ``error_status`` with ``error_ratio``, a slow ``success`` body with ``slow_ratio``
        (the headers and the first half of the body at once, the second half ``slow_body``
        seconds later, default 1), else ``success`` (default ``Reply(200, json={"ok":
        true})``). Every reply is delayed by ``latency`` seconds, fixed or uniform within
        ``(low, high)``; with probability ``tail_ratio``, by ``tail_latency`` instead (fixed or
        ``(low, high)``, default ``(0.5, 1.0)``): a latency tail. All ratios default to 0;
        ``seed`` defaults to 0, so runs repeat exactly for the same order of requests."""
        self._route(path, method).responder = RandomFaults(
            error_ratio=error_ratio, error_status=error_status, reset_ratio=reset_ratio,
            truncate_ratio=truncate_ratio, latency=latency, seed=seed,
            success=DEFAULT_OK if success is None else as_reply("success", success),
            slow_ratio=slow_ratio, slow_body=slow_body, tail_ratio=tail_ratio,
            tail_latency=tail_latency,
        )

    def outage(
        self,
        path: str,
        start: float | timedelta = 0.0,
        end: float | timedelta | None = None,
        *,
        status: int = 503,
        delay: float | timedelta = 0.0,
        method: str | None = None,
    ) -> None:
        """Take ``path`` down for a window: every request arriving from ``start`` to ``end``
        seconds from now (the server's clock) gets ``status`` after ``delay`` seconds, before
        any rate limit or reply of the route; before and after the window the route answers
        as configured. ``end=None`` (the default) never ends; ``start`` defaults to 0 (now).
        With ``method=None`` (the default) the window covers every method of the path;
        a window for one method wins over it. Calling it again replaces the window (and
        restarts its counts); ``end`` equal to ``start`` lifts it. :meth:`stats` reports,
        under the path's ``"outage"`` key, the window's bounds and how many requests
        arrived before, during and after it.
        """
        begin = seconds("start", start)
        finish = None if end is None else seconds("end", end)
        if finish is not None and finish < begin:
            raise ValueError(f"end must be >= start, got start={start!r}, end={end!r}")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status within 100..599, got {status!r}")
        reply = Reply(status, body=f"MockServer: outage {status}", delay=delay)
        self._route(path, method).outage = OutageWindow(self._clock.now(), begin, finish, reply)

    def cacheable(
        self,
        path: str,
        body: bytes | str,
        *,
        etag: str | None = None,
        last_modified: datetime | float | str | None = None,
        cache_control: str | None = None,
        vary: str | None = None,
        expires: datetime | float | str | timedelta | None = None,
        extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        method: str | None = None,
    ) -> CacheableResource:
        """Serve ``body`` with validators and answer conditional GET/HEAD with 304.

        ``If-None-Match`` (weak comparison, ``*`` matches) is honoured when ``etag`` is set
        (an unquoted value is quoted); otherwise ``If-Modified-Since`` against
        ``last_modified`` (a datetime, epoch seconds or an HTTP-date). ``cache_control``,
        ``vary``, ``expires`` (an HTTP-date, datetime, epoch seconds, or a ``timedelta``
        from the time of the response) and ``extra_headers`` are sent on 200 and 304 alike.
        With ``vary`` (e.g. ``"Accept"``), the body is ``body + b"\\n" + "accept: <value>"``
        (one line per varied header, names lower-cased) and each variant's ETag gets a
        suffix (``"v1"`` becomes ``"v1-<8 hex>"``), so separate cache entries are visible.

        Returns the resource; call its ``update(body=..., etag=...)`` to change it.
        """
        resource = CacheableResource(
            body, etag=etag, last_modified=last_modified, cache_control=cache_control,
            vary=vary, expires=expires, extra_headers=extra_headers,
        )
        self._route(path, method).responder = resource
        return resource

    def respond_with(self, path: str, responder: Responder, *, method: str | None = None
                     ) -> None:
        """Answer ``path`` with any object whose ``respond(request, body, wall)`` returns a
        :class:`Reply` (for behaviours the helpers above do not cover)."""
        self._route(path, method).responder = responder

    def remove(self, path: str, *, method: str | None = None) -> None:
        """Forget the route of ``path`` (for ``method``, or the any-method route)."""
        routes = self._routes.get(path)
        if routes is not None:
            routes.pop(_method_key(method), None)
            if not routes:
                del self._routes[path]

    def configure(self, config: Mapping[str, Any]) -> None:
        """Set routes up from a JSON-like document, as ``POST /__control/configure`` does.

        ``{"reset": bool, "record": bool, "routes": [{"path": "/x", "method": "GET",
        "script": [503, {"status": 200, "json": {...}}], "repeat_last": true}, {"path":
        "/y", "rate_limited": {"rate": 10, "per": 1}}, ...]}``; a route entry takes one or
        more of ``script``, ``fail_then_succeed``, ``random_faults``, ``cacheable``,
        ``rate_limited``, ``set_rate``, ``outage`` with the keyword arguments of the method
        of the same name (replies as a status int or an object of :class:`Reply` arguments).
        """
        _config.apply(self, config)

    # -- recording ---------------------------------------------------------------------

    @property
    def record(self) -> bool:
        """Whether requests are recorded (counters are always kept); may be switched."""
        return self._recorder.record

    @record.setter
    def record(self, value: bool) -> None:
        self._recorder.record = bool(value)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (including rate-limited and reset ones), oldest first.

        A copy; empty when ``record=False``. Control requests are not recorded.
        """
        return list(self._recorder.requests)

    def requests_for(self, path: str, *, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests for ``path`` (and ``method`` when given)."""
        upper = method.upper() if method else None
        return [r for r in self._recorder.requests
                if r.path == path and (upper is None or r.method == upper)]

    def count(self, path: str | None = None) -> int:
        """How many requests arrived (for ``path``, or in all). Works with ``record=False``."""
        return self._recorder.count(path)

    def clear(self) -> None:
        """Forget the recorded requests and counters; routes stay."""
        self._recorder.clear()

    def reset(self) -> None:
        """Forget routes, recorded requests and counters."""
        self._routes.clear()
        self._recorder.clear()

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict: ``total``, ``paths`` (``{path: {"count": n,
        "statuses": {"200": n, "reset": n, "truncated": n}}}``), ``cpu_time`` (this
        process's CPU seconds, ``time.process_time()``) and ``recording``. A path with an
        :meth:`outage` window also has ``"outage": {"start": s, "end": s, "before": n,
        "during": n, "after": n}`` (seconds from when the window was set; arrivals)."""
        stats = self._recorder.stats()
        for path, routes in self._routes.items():
            for route in routes.values():
                if route.outage is not None:
                    entry = stats["paths"].setdefault(path, {"count": 0, "statuses": {}})
                    entry["outage"] = route.outage.stats()
        return stats

    async def wait_for_requests(
        self, n: int = 1, *, path: str | None = None, timeout: float = 5.0
    ) -> None:
        """Wait (real time, at most ``timeout`` seconds) until ``count(path) >= n``.

        When it returns, the handlers of those requests have reached their first wait on
        the server's clock, so a test may ``await fake_clock.advance(...)`` safely.
        Raises ``TimeoutError`` naming the count reached.
        """
        await self._recorder.wait_for(n, path, timeout)

    # -- serving -----------------------------------------------------------------------

    def _route(self, path: str, method: str | None) -> Route:
        if not isinstance(path, str) or not path.startswith("/") or "?" in path:
            raise ValueError(f"path must start with '/' and carry no query, got {path!r}")
        if path.startswith(CONTROL_PREFIX):
            raise ValueError(f"paths under {CONTROL_PREFIX} are reserved, got {path!r}")
        routes = self._routes.setdefault(path, {})
        key = _method_key(method)
        route = routes.get(key)
        if route is None:
            route = routes[key] = Route()
        return route

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith(CONTROL_PREFIX):
            return await _config.control(self, request)
        body = await request.read() if request.body_exists else b""
        now = self._clock.now()
        self._recorder.arrived(request, path, body, now)

        wall = now + self._epoch_offset
        extra: HeaderItems = ()
        reply: Reply | None = None
        routes = self._routes.get(path)
        if routes is None:
            reply = builtin_reply(request, body, False)
        else:
            route = routes.get(request.method) or routes.get("*")
            if route is None:
                reply = Reply(405, headers={"Allow": ", ".join(sorted(routes))})
            else:
                outage = route.outage
                if outage is None and "*" in routes:  # an outage for any method
                    outage = routes["*"].outage
                if outage is not None:
                    reply = outage.check(now)
                if reply is None and route.limiter is not None:
                    allowed, extra = route.limiter.take(now, wall)
                    if not allowed:
                        reply = RATE_LIMITED
                if reply is None:
                    reply = (route.responder.respond(request, body, wall)
                             if route.responder is not None
                             else builtin_reply(request, body, True))
        if self._custom_clock and not any(k.lower() == "date" for k, _ in reply.header_items):
            extra = (*extra, ("Date", formatdate(wall + reply.delay_seconds, usegmt=True)))

        key = "reset" if reply.reset else "truncated" if reply.truncate else str(reply.status)
        self._recorder.answered(path, key)

        if not (reply.delay_seconds or reply.drip):
            return await play(request, reply, self._clock, now, extra)
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            return await play(request, reply, self._clock, now, extra)
        finally:
            self._inflight.discard(task)

    def __repr__(self) -> str:
        where = self._origin if self._origin is not None else "not started"
        return f"<MockServer {where} requests={self._recorder.total}>"


def _method_key(method: str | None) -> str:
    if method is None:
        return "*"
    if not isinstance(method, str) or not method.isalpha():
        raise ValueError(f"method must be an HTTP method name or None, got {method!r}")
    return method.upper()


if __name__ == "__main__":  # python -m resilient_http.testing.server (same as -m ...testing)
    from resilient_http.testing.process import main

    raise SystemExit(main())
