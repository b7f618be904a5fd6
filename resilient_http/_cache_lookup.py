"""The slow half of ``Cache``'s way in: whatever is not a plain request's fresh hit.

:class:`Lookup` is a mixin of ``Cache``. ``Cache.enter`` answers the common case itself (a
request without ``Cache-Control``, ``Pragma`` or validators, for a fresh entry of a
synchronous store: one look-up, one clock reading, one ``ClientResponse``); everything else
comes here: the rules of :func:`resilient_http._rfc9111.decide` (the caller's directives and
validators, stale entries), ``only-if-cached``, a miss and its single flight, and the
lookups of an asynchronous store.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import ClientRequest

from resilient_http._cache_flights import Coalescer
from resilient_http._cache_refresh import Refresher
from resilient_http._cache_request import facts, match
from resilient_http._flight import Pending
from resilient_http._info import HIT, STALE, tag
from resilient_http._middleware import Call, Short, Step
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
from resilient_http._store import Variants

__all__ = ["Lookup"]


class Lookup(Coalescer, Refresher):
    """The way in of ``Cache`` past its fast path (the single flight is :class:`Coalescer`'s,
    the background refresh :class:`Refresher`'s)."""

    __slots__ = ()

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
