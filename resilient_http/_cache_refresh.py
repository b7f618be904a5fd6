"""Stale-while-revalidate: the background refresh of ``Cache``.

:class:`Refresher` is a mixin of ``Cache``. A stale entry within its stale-while-revalidate
window is served at once, and a task (owned by the cache: ``close()`` cancels it) asks the
origin again, leading the key's flight so that concurrent misses wait for it. The refresh is
an ordinary request of the caller's session, so it goes through the session's middlewares,
and through every layer inside the cache (a circuit breaker, a rate limit, retries, timeouts):
the cache recognises its own refresh (:data:`REFRESHING`, a context variable of the task)
and lets it through as the flight's leader, storing its answer as for any miss. A session
that does not run this cache itself (``wrap()``, per-request ``middlewares=``) gets the
answer stored by the task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Any

from aiohttp import ClientRequest, ClientResponse
from multidict import CIMultiDict

from resilient_http._clock import Clock
from resilient_http._flight import Flight, Pending
from resilient_http._rfc9111 import Entry, Policy
from resilient_http.events import Emitter

__all__ = ["REFRESHING", "Refresher"]

REFRESHING: ContextVar[Pending | None] = ContextVar("resilient_http.cache.refresh", default=None)
"""In a refresh task: its pending call, until the cache takes it over (then ``None``)."""

# Request fields a background refresh does not copy: it sends no body, and aiohttp sets these.
_NOT_REPLAYED = frozenset({"content-length", "content-type", "transfer-encoding", "host",
                           "connection"})


class Refresher:
    """The stale-while-revalidate half of ``Cache`` (a mixin: ``Cache`` supplies the rest)."""

    __slots__ = ()

    clock: Clock
    _policy: Policy
    _events: Emitter
    _flights: dict[Any, Flight]
    _tasks: set[asyncio.Future[Any]]

    async def close(self) -> None:
        """Cancel the background refreshes (stale-while-revalidate) and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def tasks(self) -> frozenset[asyncio.Future[Any]]:
        """The background refreshes running now."""
        return frozenset(self._tasks)

    def _lead(self, pending: Pending) -> None:
        raise NotImplementedError

    def _land(self, pending: Pending, outcome: Any) -> None:
        raise NotImplementedError

    def _spawn(self, aw: Awaitable[Any]) -> asyncio.Future[Any]:
        raise NotImplementedError

    def _absorb(self, request: ClientRequest, pending: Pending, resp: ClientResponse,
                body: bytes) -> Any:
        raise NotImplementedError

    def _own_refresh(self, fkey: Any, take: bool) -> Pending | None:
        """The refresh task's pending call when this request is that refresh, else ``None``.
        Taking it over (``take``: the request goes on as the flight's leader) clears it."""
        own = REFRESHING.get()
        if own is None or own.fkey != fkey or self._flights.get(fkey) is not own.flight:
            return None
        if take:
            REFRESHING.set(None)
        return own

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
        REFRESHING.set(pending)
        try:
            async with session.request(
                request.method, request.url, headers=headers, allow_redirects=False
            ) as resp:
                body = await resp.read()
                if REFRESHING.get() is pending:  # this cache did not see it: store it here
                    self._absorb(request, pending, resp, body)
        except Exception as exc:  # a background task: report, never raise
            self._events.emit(
                "cache.refresh_failed", request.method, request.url, level=logging.INFO,
                error=type(exc).__name__,
            )
        finally:
            self._land(pending, None)

