"""``Cache``: a response cache that hands back real ``aiohttp.ClientResponse`` objects.

A TTL cache by default, RFC 9111 when the server speaks it (freshness, ``Vary``,
revalidation, stale-if-error / stale-while-revalidate, invalidation after unsafe methods; the
rules live in :mod:`resilient_http._rfc9111`). A hit is answered synchronously, without an
``await``: the stored status, headers and bytes become a finished ``ClientResponse``
(:mod:`resilient_http._response`). Concurrent misses for one key make one upstream request.
The way out (storing a miss as the caller reads it, revalidation, stale-if-error) is in
:mod:`resilient_http._cache_fill`, stale-while-revalidate in
:mod:`resilient_http._cache_refresh`.

In decorator mode (``@resilient(Cache(ttl=...))``) it memoizes the function's result by its
arguments, with the same single-flight rule.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from resilient_http._cache_fill import Filler
from resilient_http._cache_flights import Coalescer
from resilient_http._cache_lookup import Lookup
from resilient_http._cache_refresh import Refresher
from resilient_http._clock import Clock, LoopClock
from resilient_http._flight import Flight
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._info import CacheStats
from resilient_http._memo import Memoizer
from resilient_http._middleware import REQUEST, Call, Layer, Step
from resilient_http._rfc9111 import Policy
from resilient_http._store import CacheStore, MemoryStore, Variants, store_for
from resilient_http._validate import (
    callable_or_none,
    clock_or_default,
    duration,
    flag,
    names,
    positive_int,
    show,
)
from resilient_http.credentials import header_names
from resilient_http.events import Emitter, EventHook

if TYPE_CHECKING:
    from resilient_http.redis.store import RedisStore

__all__ = ["Cache", "CacheStore", "MemoryStore"]


class Cache(Lookup, Coalescer, Filler, Refresher, Memoizer, Layer):
    """Cache responses (or, on a decorated function, results).

    Args:
        ttl: lifetime in seconds (or a ``timedelta``) of responses that carry no freshness
            information (no ``max-age``/``Expires``), and of memoized results in decorator
            mode. ``0`` stores them but reuses them only after revalidation. Default 60.
        maxsize: the most responses (or results) kept. Default 1024.
        max_bytes: the most bytes of responses kept (body, headers and ~200 bytes of
            overhead each), and so the largest response stored. Default 64 MiB. A miss is
            never read by the cache: the caller reads it, and the cache keeps a copy of what
            the caller read, stored when the caller has read it all. A response announcing
            more (``Content-Length``), or growing past it, is handed through uncopied.
        shared: behave as a shared cache (a gateway serving many users, RFC 9111): honour
            ``s-maxage`` and ``proxy-revalidate``, never store ``private`` responses, and
            store responses to requests with credentials only when the response allows it
            (``public``, ``s-maxage``, ``must-revalidate``). Default ``False``: a private
            client cache, where the values of every credential header (the rule of
            :mod:`resilient_http.credentials`: ``Authorization``, ``Cookie`` with the
            session's cookies, ``auth=``, ``PRIVATE-TOKEN``, ``X-Api-Key`` …) are hashed into
            the key, so one caller's response never reaches another caller, nor an
            anonymous one.
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
            belongs to the layer: ``await cache.close()`` cancels it. The refresh is a
            request of the caller's session: it goes through the session's middlewares (the
            layers inside the cache too, so an open circuit or an empty rate bucket stops
            it). Default 0.
        store_streams: store ``text/event-stream`` responses and responses whose end is the
            connection's close (no ``Content-Length``, not chunked), copied up to
            ``max_bytes`` as the caller reads them. Default ``False``: handed through, never
            stored (an event stream may never end).
        key_headers: more request header names whose values are part of the key (hashed),
            e.g. ``["X-Tenant", "Accept-Language"]``; a response is then only served to
            requests with the same values. Default none.
        key: a callable computing the cache key. On requests: ``key(request) -> str``
            (default: the URL; invalidation after unsafe methods uses it too). In decorator
            mode: ``key(*args, **kwargs) -> Hashable`` (default: the arguments, which must
            then be hashable).
        store: where responses live; default a :class:`MemoryStore` bounded by ``maxsize``
            and ``max_bytes``. Any :class:`CacheStore` (its methods may be async). A
            :class:`~resilient_http.RedisStore` is shared by every process using it (see
            :class:`~resilient_http.redis.RedisCacheStore`, which also caps ``max_bytes``).
        clock: the time source; default the event loop's clock.
        on_event: hook(s) receiving ``cache.hit``, ``cache.miss``, ``cache.stored``,
            ``cache.not_stored`` (with ``reason``), ``cache.revalidated``,
            ``cache.served_stale`` (with ``why``: ``"error"`` or ``"revalidating"``),
            ``cache.invalidated`` and ``cache.refresh_failed`` events.

    A hit (fresh entry in the in-memory store) is answered without an ``await``, as a real
    ``aiohttp.ClientResponse``. Put the cache outside ``Timeout``/``Retry``/``RateLimit``
    (``standard(cache=...)`` does): a hit then costs no attempt and no token. Call
    ``await cache.close()`` when done with it if ``stale_while_revalidate`` is used.
    ``rh.info(resp).cache`` says whether a response was a hit, revalidated or stale;
    ``cache.stats()`` counts hits, misses, entries and bytes.

    One ``Cache`` serves one running event loop at a time (its waiters, background tasks and
    in-memory store are not shared between threads): reusing it on a later loop is fine;
    using it while the loop it last served runs in another thread raises ``RuntimeError``.

    Example::

        cache = rh.Cache(ttl=30, stale_if_error=300)
        async with aiohttp.ClientSession(middlewares=(cache,)) as session:
            async with session.get(url) as resp:      # the second time: from the cache
                data = await resp.json()

    Pickling or copying it (``copy.copy``, ``copy.deepcopy``) gives a new layer with the same
    configuration and none of the state (see the README's "Pickling and copying").
    """

    __slots__ = (
        "_config", "ttl", "maxsize", "max_bytes", "shared", "respect_headers", "methods",
        "stale_if_error", "stale_while_revalidate", "store_streams", "key_headers", "key",
        "store", "clock",
        "_policy", "_events", "_flights", "_tasks", "_memo", "_fleet",
    )

    __reduce__ = fresh_reduce

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
        store_streams: bool = False,
        key_headers: Iterable[str] | None = None,
        key: Callable[..., Any] | None = None,
        store: CacheStore | RedisStore | None = None,
        clock: Clock | None = None,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        self._config = config_of(locals())
        self.ttl = duration("ttl", ttl, allow_zero=True)
        self.maxsize = positive_int("maxsize", maxsize)
        self.max_bytes = positive_int("max_bytes", max_bytes)
        self.shared = flag("shared", shared)
        self.respect_headers = flag("respect_headers", respect_headers)
        chosen = names("methods", methods)
        if not chosen or not chosen <= {"GET", "HEAD"}:
            raise ValueError(
                f"methods must be a non-empty subset of ('GET', 'HEAD'), got {show(methods)}"
            )
        self.methods = chosen
        self.stale_if_error = duration("stale_if_error", stale_if_error, allow_zero=True)
        self.stale_while_revalidate = duration(
            "stale_while_revalidate", stale_while_revalidate, allow_zero=True
        )
        self.store_streams = flag("store_streams", store_streams)
        self.key_headers = header_names("key_headers", key_headers)
        self.key = callable_or_none("key", key)
        self.store: CacheStore = store_for(store, self.maxsize, self.max_bytes)
        self.clock: Clock = clock_or_default(clock)
        # The loop clock's now() is time.monotonic(): call that directly (no Python frame).
        self._now: Callable[[], float] = (
            time.monotonic if type(self.clock) is LoopClock else self.clock.now
        )
        bind = getattr(self.store, "bind", None)
        if bind is not None:  # a shared store: its clock, its size limit, its single flight
            bind(self.clock)
            self.max_bytes = min(self.max_bytes, getattr(self.store, "max_entry_bytes", max_bytes))
        self._fleet: Any = self.store if hasattr(self.store, "claim") else None
        # A MemoryStore's dictionary, read directly by a hit (MemoryStore.get, inlined).
        self._lru: OrderedDict[str, Variants] | None = (
            self.store._data if type(self.store) is MemoryStore else None
        )
        self._policy = Policy(
            shared, self.ttl, respect_headers, self.stale_if_error, self.stale_while_revalidate
        )
        self._events = Emitter("Cache", on_event)
        self._flights: dict[Any, Flight] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._memo: LRUCache[Any, tuple[float, Any]] = LRUCache(self.maxsize)
        self._hits = self._misses = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle (and close)

    async def clear(self) -> None:
        """Forget every stored response and memoized result."""
        self._memo.clear()
        done = self.store.clear()
        if done is not None:
            await done

    def _count(self, hit: bool) -> None:
        if hit:
            self._hits += 1
        else:
            self._misses += 1

    def stats(self) -> CacheStats:
        """Hits and misses of this layer's HTTP lookups since it was made, and what its store
        holds now (``entries``, ``bytes``: ``None`` when the store does not count them)."""
        store: Any = self.store
        return CacheStats(
            self._hits, self._misses, getattr(store, "count", None), getattr(store, "size", None)
        )

    # ------------------------------------------------------------------ the way out

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        pending = call[i]
        if pending is None:
            return None
        call[i] = None
        if call[REQUEST] is None:
            return self._exit_call(call, pending, result, error)
        return self._exit_request(call, i, pending, result, error)

    def __repr__(self) -> str:
        extra = ", shared=True" if self.shared else ""
        return f"Cache(ttl={self.ttl:g}, maxsize={self.maxsize}{extra})"
