"""``Cache``: a response cache that hands back real ``aiohttp.ClientResponse`` objects.

A TTL cache by default, RFC 9111 when the server speaks it (freshness, ``Vary``,
revalidation, stale-if-error / stale-while-revalidate, invalidation after unsafe methods; the
rules live in :mod:`resilient_http._rfc9111`). A hit is answered synchronously, without an
``await``: the stored status, headers and bytes become a finished ``ClientResponse``
(:mod:`resilient_http._response`). Concurrent misses for one key make one upstream request.

In decorator mode (``@resilient(Cache(ttl=...))``) it memoizes the function's result by its
arguments, with the same single-flight rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import ClientError, ClientRequest, ClientResponse
from cachetools import LRUCache
from multidict import CIMultiDict

from resilient_http._clock import Clock
from resilient_http._flight import Flight, Pending, land, lead
from resilient_http._memo import Memoizer
from resilient_http._middleware import REENTER, REQUEST, Call, Layer, Short, Step
from resilient_http._response import (
    body_if_read,
    entry_response,
    not_modified_response,
    status_response,
)
from resilient_http._rfc9111 import (
    Entry,
    Fresh,
    NotModified,
    Policy,
    RequestFacts,
    Revalidate,
    ServeStale,
    can_store,
    decide,
    invalidated_urls,
    make_entry,
    parse_cache_control,
    refreshed,
    stale_on_error,
    vary_names,
)
from resilient_http._store import CacheStore, MemoryStore, Variants, forget, put
from resilient_http._validate import (
    callable_or_none,
    clock_or_default,
    duration,
    flag,
    positive_int,
)
from resilient_http.events import CREDENTIAL_HEADERS, Emitter, EventHook

__all__ = ["Cache", "CacheStore", "MemoryStore", "CREDENTIAL_HEADERS"]

_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_UNSAFE = object()
# Request fields a background refresh does not copy: it sends no body, and aiohttp sets these.
_NOT_REPLAYED = frozenset({"content-length", "content-type", "transfer-encoding", "host",
                           "connection"})


class Cache(Memoizer, Layer):
    """Cache responses (or, on a decorated function, results).

    Args:
        ttl: lifetime in seconds (or a ``timedelta``) of responses that carry no freshness
            information (no ``max-age``/``Expires``), and of memoized results in decorator
            mode. ``0`` stores them but reuses them only after revalidation. Default 60.
        maxsize: the most responses (or results) kept. Default 1024.
        max_bytes: the most bytes of responses kept (body, headers and ~200 bytes of
            overhead each). Default 64 MiB.
        shared: behave as a shared cache (a gateway serving many users, RFC 9111): honour
            ``s-maxage`` and ``proxy-revalidate``, never store ``private`` responses, and
            store responses to requests with credentials only when the response allows it
            (``public``, ``s-maxage``, ``must-revalidate``). Default ``False``: a private
            client cache, where credentials (``Authorization``, cookies, API-key headers) are
            hashed into the key so one caller's response never reaches another caller.
        respect_headers: follow ``Cache-Control``, ``Expires`` and ``Age``. ``False`` makes it
            a pure TTL cache (every response with a heuristically cacheable status, 200, 203,
            204, 300, 301, 308, 404, 405, 410, 414, 501, lives ``ttl`` seconds) for APIs that
            send wrong headers. Default ``True``.
        methods: the methods whose responses are cached. Default ``("GET", "HEAD")``; only
            these two are allowed. Unsafe methods (POST, PUT, PATCH, DELETE) are never cached
            and invalidate the target URL's entries (and same-origin ``Location`` and
            ``Content-Location``) when they succeed.
        stale_if_error: seconds past expiry a stale response may stand in when the origin
            answers 5xx or cannot be reached (a response's own ``stale-if-error`` wins).
            Default 0 (only the response's directive).
        stale_while_revalidate: seconds past expiry a stale response may be served at once
            while a background task refreshes it (a response's own directive wins). The task
            belongs to the layer: ``await cache.close()`` cancels it. Default 0.
        key: a callable computing the cache key. On requests: ``key(request) -> str``
            (default: the URL; invalidation after unsafe methods uses it too). In decorator
            mode: ``key(*args, **kwargs) -> Hashable`` (default: the arguments, which must
            then be hashable).
        store: where responses live; default a :class:`MemoryStore` bounded by ``maxsize``
            and ``max_bytes``. Any :class:`CacheStore` (its methods may be async).
        clock: the time source; default the event loop's clock.
        on_event: hook(s) receiving ``cache.hit``, ``cache.miss``, ``cache.stored``,
            ``cache.not_stored`` (with ``reason``), ``cache.revalidated``,
            ``cache.served_stale`` (with ``why``: ``"error"`` or ``"revalidating"``),
            ``cache.invalidated`` and ``cache.refresh_failed`` events.

    A hit (fresh entry in the in-memory store) is answered without an ``await``, as a real
    ``aiohttp.ClientResponse``. Put the cache outside ``Timeout``/``Retry``/``RateLimit``
    (``standard(cache=...)`` does): a hit then costs no attempt and no token. Call
    ``await cache.close()`` when done with it if ``stale_while_revalidate`` is used.

    One ``Cache`` serves one running event loop at a time (its waiters, background tasks and
    in-memory store are not shared between threads): reusing it on a later loop is fine;
    using it while the loop it last served runs in another thread raises ``RuntimeError``.

    Example::

        cache = rh.Cache(ttl=30, stale_if_error=300)
        async with aiohttp.ClientSession(middlewares=(cache,)) as session:
            async with session.get(url) as resp:      # the second time: from the cache
                data = await resp.json()
    """

    __slots__ = (
        "ttl", "maxsize", "max_bytes", "shared", "respect_headers", "methods",
        "stale_if_error", "stale_while_revalidate", "key", "store", "clock",
        "_policy", "_events", "_flights", "_tasks", "_memo",
        "_loop",
    )

    def __init__(
        self,
        ttl: float | timedelta = 60.0,
        *,
        maxsize: int = 1024,
        max_bytes: int = 64 * 2**20,
        shared: bool = False,
        respect_headers: bool = True,
        methods: Iterable[str] = ("GET", "HEAD"),
        stale_if_error: float | timedelta = 0.0,
        stale_while_revalidate: float | timedelta = 0.0,
        key: Callable[..., Any] | None = None,
        store: CacheStore | None = None,
        clock: Clock | None = None,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        self.ttl = duration("ttl", ttl, allow_zero=True)
        self.maxsize = positive_int("maxsize", maxsize)
        self.max_bytes = positive_int("max_bytes", max_bytes)
        self.shared = flag("shared", shared)
        self.respect_headers = flag("respect_headers", respect_headers)
        if isinstance(methods, str):
            raise TypeError(f"methods must be a sequence of method names, got {methods!r}")
        chosen = frozenset(str(m).upper() for m in methods)
        if not chosen or not chosen <= {"GET", "HEAD"}:
            raise ValueError(
                f"methods must be a non-empty subset of ('GET', 'HEAD'), got {tuple(methods)!r}"
            )
        self.methods = chosen
        self.stale_if_error = duration("stale_if_error", stale_if_error, allow_zero=True)
        self.stale_while_revalidate = duration(
            "stale_while_revalidate", stale_while_revalidate, allow_zero=True
        )
        self.key = callable_or_none("key", key)
        if store is None:
            store = MemoryStore(self.maxsize, self.max_bytes)
        elif not isinstance(store, CacheStore):
            raise TypeError(f"store must be a CacheStore (get, set, delete, clear), got {store!r}")
        self.store: CacheStore = store
        self.clock: Clock = clock_or_default(clock)
        self._policy = Policy(
            shared, self.ttl, respect_headers, self.stale_if_error, self.stale_while_revalidate
        )
        self._events = Emitter("Cache", on_event)
        self._flights: dict[Any, Flight] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._memo: LRUCache[Any, tuple[float, Any]] = LRUCache(self.maxsize)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Cancel the background refreshes (stale-while-revalidate) and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def clear(self) -> None:
        """Forget every stored response and memoized result."""
        self._memo.clear()
        done = self.store.clear()
        if done is not None:
            await done

    @property
    def tasks(self) -> frozenset[asyncio.Future[Any]]:
        """The background refreshes running now."""
        return frozenset(self._tasks)

    # ------------------------------------------------------------------ the way in

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``loop`` from now on, unless the loop served so far runs in another thread."""
        old = self._loop
        if old is not None and old.is_running():
            raise RuntimeError(
                f"Cache: used from an event loop while the loop it serves ({old!r}) runs in "
                f"another thread; a Cache serves one running event loop at a time (loops that "
                f"run one after another are fine): give each thread its own Cache"
            )
        self._loop = loop

    def enter(self, call: Call, i: int) -> Step:
        request = call[REQUEST]
        loop = request.loop if request is not None else asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if request is None:
            return self._enter_call(call, i)
        method = request.method
        if method not in self.methods:
            if method not in _SAFE:
                call[i] = _UNSAFE
            return None
        headers = request.headers
        key = str(request.url) if self.key is None else self.key(request)
        owner = None
        if not headers.keys().isdisjoint(CREDENTIAL_HEADERS):
            owner = "shared" if self.shared else _owner(headers)
        found = self.store.get(key)
        if found is not None and not isinstance(found, tuple):
            return self._lookup_later(call, i, request, key, owner, found)
        return self._lookup(call, i, request, key, owner, found)

    async def _lookup_later(
        self, call: Call, i: int, request: ClientRequest, key: str, owner: str | None,
        found: Awaitable[Variants | None],
    ) -> Short | None:
        step = self._lookup(call, i, request, key, owner, await found)
        if step is None or type(step) is Short:
            return step
        return await step  # type: ignore[no-any-return, misc]

    def _lookup(
        self, call: Call, i: int, request: ClientRequest, key: str, owner: str | None,
        variants: Variants | None,
    ) -> Step:
        headers = request.headers
        method = request.method
        entry = None
        verdict: Any = None
        if variants:
            for candidate in variants:
                if (
                    candidate.method == method
                    and candidate.owner == owner
                    and (not candidate.vary or _vary_matches(candidate, headers))
                ):
                    entry = candidate
                    break
        now = self.clock.now()
        cc = headers.get("Cache-Control")
        plain = (
            cc is None
            and "If-None-Match" not in headers
            and "If-Modified-Since" not in headers
            and "Pragma" not in headers
        )
        if entry is not None:
            if plain and now < entry.fresh_until and not entry.no_cache:
                self._events.emit("cache.hit", method, request.url)
                return Short(entry_response(entry, request, now))
            verdict = decide(self._policy, entry, _facts(request, owner), now)
            if type(verdict) is Fresh:
                self._events.emit("cache.hit", method, request.url)
                return Short(entry_response(entry, request, now))
            if type(verdict) is NotModified:
                self._events.emit("cache.hit", method, request.url, status=304)
                return Short(not_modified_response(entry, request, verdict.age))
            if type(verdict) is ServeStale:
                self._refresh_in_background(request, key, owner, entry, verdict.conditional)
                self._events.emit("cache.served_stale", method, request.url, why="revalidating")
                return Short(entry_response(entry, request, now))
        if cc is not None and "only-if-cached" in parse_cache_control(cc):
            self._events.emit("cache.miss", method, request.url, only_if_cached=True)
            return Short(status_response(request, 504, "Gateway Timeout"))
        fkey = (key, owner)
        pending = Pending(key, fkey, owner, entry, now)
        call[i] = pending
        flight = self._flights.get(fkey)
        if flight is not None:
            return self._wait(call, i, request, pending, flight)
        self._lead(pending)
        if (
            entry is not None
            and type(verdict) is Revalidate
            and verdict.conditional
            and "If-None-Match" not in headers
            and "If-Modified-Since" not in headers
        ):
            pending.added = verdict.conditional
            for name, value in verdict.conditional:
                headers[name] = value
        self._events.emit(
            "cache.miss", method, request.url, stale=entry is not None,
            conditional=bool(pending.added),
        )
        return None

    async def _wait(
        self, call: Call, i: int, request: ClientRequest, pending: Pending, flight: Flight
    ) -> Short | None:
        outcome = await flight.wait()
        if outcome is not None:
            entry, why = outcome
            if entry.owner == pending.owner and entry.method == request.method and (
                not entry.vary or _vary_matches(entry, request.headers)
            ):
                now = self.clock.now()
                if why is not None:
                    self._events.emit("cache.served_stale", request.method, request.url, why=why)
                else:
                    self._events.emit("cache.hit", request.method, request.url, waited=True)
                call[i] = None
                return Short(entry_response(entry, request, now))
        # The leader failed or its response cannot serve us: go on our own, uncoalesced.
        pending.entry = None
        return None

    # ------------------------------------------------------------------ the way out

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        pending = call[i]
        if pending is None:
            return None
        call[i] = None
        request = call[REQUEST]
        if request is None:
            return self._exit_call(call, pending, result, error)
        if pending is _UNSAFE:
            if error is None and isinstance(result, ClientResponse):
                self._invalidate(request, result)
            return None
        outcome: Any = None
        try:
            if error is not None or not isinstance(result, ClientResponse):
                if (
                    pending.entry is not None
                    and isinstance(error, (ClientError, OSError, asyncio.TimeoutError))
                    and stale_on_error(pending.entry, self.clock.now())
                ):
                    outcome = (pending.entry, "error")
                    return self._serve_stale(request, pending.entry, "error")
                return None
            status = result.status
            if status == 304 and pending.entry is not None:
                step = self._not_modified(call, i, request, pending, result)
                pending = None  # the flight is landed (or kept) by _not_modified
                return step
            if (
                status >= 500
                and pending.entry is not None
                and stale_on_error(pending.entry, self.clock.now())
            ):
                result.release()
                outcome = (pending.entry, "error")
                return self._serve_stale(request, pending.entry, "error")
            facts = _facts(request, pending.owner)
            reason = can_store(self._policy, facts, status, _pairs(result.headers))
            if reason is not None:
                self._events.emit("cache.not_stored", request.method, request.url, reason=reason)
                if pending.entry is not None and 200 <= status < 300:
                    self._forget(pending.key, pending.entry)
                return None
            body = body_if_read(result)
            if body is None:
                reading = self._read_and_store(request, pending, result, facts)
                pending = None  # released by the reader
                return reading
            entry = self._store(request, pending, result, facts, body)
            outcome = (entry, None) if entry is not None else None
            return None
        finally:
            if pending is not None:
                self._land(pending, outcome)

    def _lead(self, pending: Pending) -> None:
        lead(self._flights, pending)

    def _land(self, pending: Pending, outcome: Any) -> None:
        land(self._flights, pending, outcome)

    async def _read_and_store(
        self, request: ClientRequest, pending: Pending, result: ClientResponse,
        facts: RequestFacts,
    ) -> None:
        outcome = None
        try:
            body = await result.read()
            entry = self._store(request, pending, result, facts, body)
            if entry is not None:
                outcome = (entry, None)
        finally:
            self._land(pending, outcome)

    def _store(
        self, request: ClientRequest, pending: Pending, result: ClientResponse,
        facts: RequestFacts, body: bytes,
    ) -> Entry | None:
        headers = _pairs(result.headers)
        names = vary_names(headers) or ()
        entry = make_entry(
            self._policy, facts, status=result.status, reason=result.reason or "",
            headers=headers, body=body,
            vary=tuple((n, _joined(request.headers, n)) for n in names),
            request_time=pending.request_time, response_time=self.clock.now(),
            wall=time.time(),
        )
        entry.owner = pending.owner
        if entry.size > self.max_bytes:
            self._events.emit("cache.not_stored", request.method, request.url, reason="too large")
            return None
        if (
            entry.lifetime <= 0 and entry.etag is None and entry.last_modified is None
            and entry.stale_if_error <= 0
        ):
            self._events.emit(
                "cache.not_stored", request.method, request.url, reason="nothing to reuse"
            )
            return None
        self._put(pending.key, entry, pending.entry)
        self._events.emit(
            "cache.stored", request.method, request.url, status=entry.status,
            lifetime=entry.lifetime, size=entry.size,
        )
        return entry

    def _not_modified(
        self, call: Call, i: int, request: ClientRequest, pending: Pending,
        result: ClientResponse,
    ) -> Step:
        old = pending.entry
        assert old is not None
        headers = _pairs(result.headers)
        etag = result.headers.get("ETag")
        if etag is not None and old.etag is not None and etag.strip() != old.etag.strip():
            # The 304 validates another representation than ours: forget ours.
            self._forget(pending.key, old)
            pending.entry = None
            if not pending.added:
                self._land(pending, None)
                return None  # the caller's own conditional request: the 304 is theirs
            # We asked: ask again without our validators (once), keeping the flight.
            result.release()
            for name, _ in pending.added:
                request.headers.popall(name, None)
            pending.added = ()
            call[i] = pending
            again: Step = REENTER
            return again
        entry = self._revalidated(request, pending, old, headers)
        self._land(pending, (entry, None))
        if not pending.added:
            return None  # the caller's own conditional request: it asked for the 304
        result.release()
        for name, _ in pending.added:
            request.headers.popall(name, None)
        return Short(entry_response(entry, request, self.clock.now()))

    def _revalidated(
        self, request: ClientRequest, pending: Pending, old: Entry,
        headers: tuple[tuple[str, str], ...],
    ) -> Entry:
        """Store ``old`` refreshed by a 304's ``headers`` in its place, and return it."""
        entry = refreshed(
            self._policy, old, headers, request_time=pending.request_time,
            response_time=self.clock.now(), wall=time.time(),
        )
        entry.owner = old.owner
        self._put(pending.key, entry, old)
        self._events.emit("cache.revalidated", request.method, request.url)
        return entry

    def _serve_stale(self, request: ClientRequest, entry: Entry, why: str) -> Short:
        self._events.emit("cache.served_stale", request.method, request.url, why=why)
        return Short(entry_response(entry, request, self.clock.now()))

    def _invalidate(self, request: ClientRequest, result: ClientResponse) -> None:
        urls = invalidated_urls(request.url, result.status, result.headers.items())
        if not urls:
            return
        keys = [self.key(request)] if self.key is not None else []
        keys += [str(u) for u in urls]
        for key in dict.fromkeys(keys):
            done = self.store.delete(key)
            if done is not None:
                self._spawn(done)
        self._events.emit("cache.invalidated", request.method, request.url, count=len(keys))

    # ------------------------------------------------------------------ store helpers

    def _put(self, key: str, entry: Entry, old: Entry | None) -> None:
        put(self.store, key, entry, old, self._spawn)

    def _forget(self, key: str, entry: Entry) -> None:
        forget(self.store, key, entry, self._spawn)

    def _spawn(self, aw: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ stale-while-revalidate

    def _refresh_in_background(
        self, request: ClientRequest, key: str, owner: str | None, entry: Entry,
        conditional: tuple[tuple[str, str], ...],
    ) -> None:
        fkey = (key, owner)
        session = getattr(request, "_session", None)
        if fkey in self._flights or session is None or session.closed:
            return
        pending = Pending(key, fkey, owner, entry, self.clock.now())
        pending.added = conditional
        self._lead(pending)
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _NOT_REPLAYED
        )
        for name, value in conditional:
            headers[name] = value
        task = self._spawn(self._refresh(session, request, headers, pending))
        task.add_done_callback(lambda _: self._land(pending, None))  # even if never started

    async def _refresh(
        self, session: Any, request: ClientRequest, headers: CIMultiDict[str], pending: Pending
    ) -> None:
        outcome = None
        try:
            async with session.request(
                request.method, request.url, headers=headers, allow_redirects=False,
                middlewares=(),
            ) as resp:
                body = await resp.read()
                entry = pending.entry
                assert entry is not None
                if resp.status == 304:
                    new = self._revalidated(request, pending, entry, _pairs(resp.headers))
                    outcome = (new, None)
                else:
                    facts = _facts(request, pending.owner)
                    if can_store(self._policy, facts, resp.status, _pairs(resp.headers)) is None:
                        stored = self._store(request, pending, resp, facts, body)
                        outcome = (stored, None) if stored is not None else None
        except (ClientError, OSError, asyncio.TimeoutError, RuntimeError) as exc:
            self._events.emit(
                "cache.refresh_failed", request.method, request.url, level=logging.INFO,
                error=type(exc).__name__,
            )
        finally:
            self._land(pending, outcome)

    def __repr__(self) -> str:
        extra = ", shared=True" if self.shared else ""
        return f"Cache(ttl={self.ttl:g}, maxsize={self.maxsize}{extra})"


# ---------------------------------------------------------------------- helpers


def _owner(headers: CIMultiDict[str]) -> str:
    """A digest of the caller's credentials (never the credentials themselves)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, value in sorted((k.lower(), v) for k, v in headers.items()):
        if name in CREDENTIAL_HEADERS:
            digest.update(f"{name}\0{value}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _facts(request: ClientRequest, owner: str | None) -> RequestFacts:
    headers = request.headers
    return RequestFacts(
        method=request.method,
        cache_control=_joined(headers, "cache-control"),
        pragma=headers.get("Pragma"),
        if_none_match=headers.get("If-None-Match"),
        if_modified_since=headers.get("If-Modified-Since"),
        authorization=owner is not None,
    )


def _joined(headers: Any, name: str) -> str | None:
    values = headers.getall(name, None)
    if not values:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)


def _vary_matches(entry: Entry, headers: Any) -> bool:
    return all(_joined(headers, name) == value for name, value in entry.vary)


def _pairs(headers: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), v) for k, v in headers.items())

