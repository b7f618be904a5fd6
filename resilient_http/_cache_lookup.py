"""The way in of ``Cache``: the key, the owner, the store's variants, and the verdict.

:class:`Lookup` is the request half of ``Cache`` (its configuration is ``Cache``'s). A
plain request (no ``Cache-Control``, ``Pragma`` or validators) for a fresh entry of a
synchronous store is every hit's path and is answered in :meth:`Lookup.enter` itself: one
look-up, one clock reading, one ``ClientResponse``. Everything else goes to
:meth:`Lookup._lookup`: the rules of :func:`resilient_http._rfc9111.decide` (the caller's
directives and validators, stale entries), ``only-if-cached``, a miss and its single
flight; an asynchronous store's variants are awaited first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientRequest
from aiohttp.hdrs import CACHE_CONTROL, IF_MODIFIED_SINCE, IF_NONE_MATCH, PRAGMA

from resilient_http._cache_fill import UNSAFE
from resilient_http._cache_flights import Coalescer
from resilient_http._cache_refresh import Refresher
from resilient_http._cache_request import KEYS, facts, match, url_key, vary_matches
from resilient_http._flight import Pending
from resilient_http._info import HIT, INFO, STALE, tag
from resilient_http._memo import Memoizer
from resilient_http._middleware import REQUEST, Call, Layer, Short, Step
from resilient_http._response import entry_response, not_modified_response, status_response
from resilient_http._rfc9111 import (
    Entry,
    Fresh,
    NotModified,
    Revalidate,
    ServeStale,
    decide,
    parse_cache_control,
)
from resilient_http._store import CacheStore, Variants
from resilient_http.credentials import owner_of
from resilient_http.events import DEBUG_LOG

__all__ = ["Lookup"]

_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class Lookup(Coalescer, Refresher, Memoizer, Layer):
    """The way in of ``Cache`` (the single flight is :class:`Coalescer`'s, the background
    refresh :class:`Refresher`'s, decorator mode :class:`Memoizer`'s), and the state a hit
    touches."""

    __slots__ = ("_hits", "_misses", "_loop", "_lru", "_now")

    _hits: int
    _misses: int
    _loop: asyncio.AbstractEventLoop | None
    _lru: OrderedDict[str, Variants] | None
    """A ``MemoryStore``'s dictionary, read directly by a hit (``MemoryStore.get``,
    inlined); ``None`` for another store."""
    _now: Callable[[], float]
    """``clock.now``, or ``time.monotonic`` itself for the loop clock (no Python frame)."""
    methods: frozenset[str]
    key: Callable[..., Any] | None
    key_headers: frozenset[str]
    shared: bool
    store: CacheStore

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
                call[i] = UNSAFE
            return None
        headers = request.headers
        if self.key is None:
            url = request.url
            known = KEYS.get(id(url))  # url_key(), inlined
            key = known[1] if known is not None and known[0] is url else url_key(url)
        else:
            key = self.key(request)
        owner = owner_of(headers, self.key_headers, self.shared)
        lru = self._lru
        found: Any
        if lru is not None:  # MemoryStore.get, inlined
            found = lru.get(key)
            if found is not None:
                lru.move_to_end(key)
        else:
            found = self.store.get(key)
            if found is not None and not isinstance(found, tuple):
                return self._lookup_later(call, i, request, key, owner, found)
        now = self._now()
        entry = None
        if found:
            for candidate in found:  # match(), inlined: this is every hit's path
                if (
                    candidate.method == method
                    and candidate.owner == owner
                    and (not candidate.vary or vary_matches(candidate, headers))
                ):
                    entry = candidate
                    break
            if (
                entry is not None
                and now < entry.fresh_until
                and not entry.no_cache
                and CACHE_CONTROL not in headers  # istr: no case folding at each look-up
                and PRAGMA not in headers
                and IF_NONE_MATCH not in headers
                and IF_MODIFIED_SINCE not in headers
            ):  # fresh, and the caller asks nothing of it: what decide() says, in short
                self._hits += 1
                if self._events.hooks or DEBUG_LOG.on:
                    self._events.emit("cache.hit", method, request.url)
                response = entry_response(entry, request, now)
                setattr(response, INFO, HIT)  # tag(), inlined
                return Short(response)
        return self._lookup(call, i, request, key, owner, entry, now)

    async def _lookup_later(
        self, call: Call, i: int, request: ClientRequest, key: str, owner: str | None,
        found: Awaitable[Variants | None],
    ) -> Short | None:
        entry = match(await found, request.method, owner, request.headers)
        step = self._lookup(call, i, request, key, owner, entry, self.clock.now())
        if step is None or type(step) is Short:
            return step
        return await step  # type: ignore[no-any-return, misc]

    def _lookup(
        self, call: Call, i: int, request: ClientRequest, key: str, owner: str | None,
        entry: Entry | None, now: float,
    ) -> Step:
        """Everything but a plain request's fresh hit: ``entry`` is the stored response
        that matches the request (method, owner, ``Vary``), if any."""
        headers = request.headers
        method = request.method
        verdict: Any = None
        if entry is not None:
            verdict = decide(self._policy, entry, facts(request, owner), now)
            if type(verdict) is Fresh:
                self._count(True)
                self._events.emit("cache.hit", method, request.url)
                return Short(tag(entry_response(entry, request, now), HIT))
            if type(verdict) is NotModified:
                self._count(True)
                self._events.emit("cache.hit", method, request.url, status=304)
                return Short(tag(not_modified_response(entry, request, verdict.age), HIT))
            if type(verdict) is ServeStale and self._own_refresh((key, owner), False) is None:
                self._count(True)
                self._refresh_in_background(request, key, owner, entry, verdict.conditional)
                self._events.emit("cache.served_stale", method, request.url, why="revalidating")
                return Short(tag(entry_response(entry, request, now), STALE))
        cc = headers.get("Cache-Control")
        if cc is not None and "only-if-cached" in parse_cache_control(cc):
            self._count(False)
            self._events.emit("cache.miss", method, request.url, only_if_cached=True)
            return Short(status_response(request, 504, "Gateway Timeout"))
        fkey = (key, owner)
        flight = self._flights.get(fkey)
        own = self._own_refresh(fkey, True) if flight is not None else None
        if own is not None:  # our own background refresh: it leads the flight already
            call[i] = own
            self._events.emit("cache.miss", method, request.url, stale=True, refresh=True)
            return None
        pending = Pending(key, fkey, owner, entry, now)
        call[i] = pending
        conditional = verdict.conditional if type(verdict) in (Revalidate, ServeStale) else ()
        if flight is not None:
            return self._wait(call, i, request, pending, flight, conditional)
        self._lead(pending)
        self._count(False)
        if self._fleet is not None:  # a store shared by processes: one of them fetches
            return self._lead_fleet(call, i, request, pending, conditional)
        self._go(request, pending, conditional)
        return None
