"""Single flight on the way in of ``Cache``: a miss leads its key's flight, or waits for it.

:class:`Coalescer` is a mixin of ``Cache``. The leader goes upstream (with the entry's
validators when it has a stale one); the others wait, and are answered with the leader's
stored response when it fits them (same credentials, method and ``Vary`` values), or go on
their own. A waiter made leader by a cancelled one (:func:`resilient_http._flight.hand_over`)
goes upstream in its place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientRequest

from resilient_http._cache_model import Fresh, Policy
from resilient_http._cache_request import facts, match, vary_matches
from resilient_http._clock import Clock
from resilient_http._flight import LEAD, Flight, Pending, hand_over
from resilient_http._info import HIT, STALE, tag
from resilient_http._middleware import Call, Short
from resilient_http._response import entry_response
from resilient_http._rfc9111 import decide
from resilient_http.events import DEBUG_LOG, Emitter

__all__ = ["Coalescer"]


class Coalescer:
    """The single-flight half of ``Cache``'s way in."""

    __slots__ = ()

    clock: Clock
    _events: Emitter
    _flights: dict[Any, Flight]
    _fleet: Any
    _policy: Policy
    _spawn: Callable[[Awaitable[Any]], Any]

    def _count(self, hit: bool) -> None:
        raise NotImplementedError  # Cache counts its lookups

    def _lead(self, pending: Pending) -> None:
        """Make ``pending`` the leader of a new flight for its key."""
        pending.flight = self._flights[pending.fkey] = Flight()

    def _land(self, pending: Pending, outcome: Any) -> None:
        """End the flight ``pending`` leads (idempotent): wake its waiters with ``outcome``."""
        flight = pending.flight
        if flight is not None:
            pending.flight = None
            flights = self._flights
            if flights.get(pending.fkey) is flight:
                del flights[pending.fkey]
            if flight:  # someone waits
                flight.done(outcome)
        if self._fleet is not None:  # our fetch for the fleet ended: free its lock
            self._release(pending)

    def _hand_over(self, pending: Pending) -> None:
        if not hand_over(self._flights, pending) and self._fleet is not None:
            self._release(pending)

    def _release(self, pending: Pending) -> None:
        done = self._fleet.release(pending.key, pending.owner)
        if done is not None:
            self._spawn(done)

    async def _lead_fleet(
        self, call: Call, i: int, request: ClientRequest, pending: Pending,
        conditional: tuple[tuple[str, str], ...],
    ) -> Short | None:
        """Lead this process's flight through the fleet's: go upstream if no other process
        is fetching the key, else wait for its response and answer with it when it fits."""
        try:
            variants = await self._fleet.claim(pending.key, pending.owner)
        except asyncio.CancelledError:
            self._hand_over(pending)
            raise
        except BaseException:
            self._land(pending, None)  # the local waiters go on their own
            raise
        entry = match(variants, request.method, pending.owner, request.headers)
        if entry is not None:
            now = self.clock.now()
            if type(decide(self._policy, entry, facts(request, pending.owner), now)) is Fresh:
                self._land(pending, (entry, None))
                call[i] = None
                self._events.emit("cache.hit", request.method, request.url, waited=True)
                return Short(entry_response(entry, request, now))
        self._go(request, pending, conditional)
        return None

    def _go(
        self, request: ClientRequest, pending: Pending, conditional: tuple[tuple[str, str], ...]
    ) -> None:
        """``pending`` leads its flight upstream: add our validators unless the caller sent
        its own."""
        headers = request.headers
        if (
            pending.entry is not None
            and conditional
            and "If-None-Match" not in headers
            and "If-Modified-Since" not in headers
        ):
            pending.added = conditional
            for name, value in conditional:
                headers[name] = value
        events = self._events
        if events.hooks or DEBUG_LOG.on:
            events.emit(
                "cache.miss", request.method, request.url, stale=pending.entry is not None,
                conditional=bool(pending.added),
            )

    async def _wait(
        self, call: Call, i: int, request: ClientRequest, pending: Pending, flight: Flight,
        conditional: tuple[tuple[str, str], ...],
    ) -> Short | None:
        waiting = flight.wait()
        try:
            outcome = await waiting
        except asyncio.CancelledError:
            if waiting.done() and not waiting.cancelled() and waiting.result() is LEAD:
                pending.flight = flight  # made the leader, then cancelled: pass it on
                self._hand_over(pending)
            raise
        if outcome is LEAD:  # the leader was cancelled: we go in its place
            self._count(False)
            pending.flight = flight
            self._go(request, pending, conditional)
            return None
        if outcome is not None:
            entry, why = outcome
            if entry.owner == pending.owner and entry.method == request.method and (
                not entry.vary or vary_matches(entry, request.headers)
            ):
                now = self.clock.now()
                self._count(True)
                if why is not None:
                    self._events.emit("cache.served_stale", request.method, request.url, why=why)
                else:
                    self._events.emit("cache.hit", request.method, request.url, waited=True)
                call[i] = None
                served = tag(entry_response(entry, request, now), HIT if why is None else STALE)
                return Short(served)
        # The leader failed or its response cannot serve us: go on our own, uncoalesced.
        self._count(False)
        pending.entry = None
        return None
