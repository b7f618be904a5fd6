"""Decorator mode of ``Cache``: memoize an async function's result by its arguments.

``@resilient(Cache(ttl=...))`` stores each call's result for ``ttl`` seconds, keyed by the
function and its arguments (or by ``Cache(key=...)``), with the single-flight rule of the
request mode: concurrent calls with the same key run the function once. A failure is never
stored; the callers that waited then run the function themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientResponse
from cachetools import LRUCache

from resilient_http._clock import Clock
from resilient_http._flight import Flight, Pending
from resilient_http._middleware import ARGS, HANDLER, KWARGS, Call, Short, Step
from resilient_http.events import Emitter, qualname

__all__ = ["Memoizer"]


class Memoizer:
    """The decorator-mode half of ``Cache`` (a mixin: ``Cache`` supplies the attributes)."""

    __slots__ = ()

    key: Callable[..., Any] | None
    clock: Clock
    ttl: float
    stale_if_error: float
    stale_while_revalidate: float
    _memo: LRUCache[Any, tuple[float, Any]]
    _flights: dict[Any, Flight]
    _events: Emitter

    def _lead(self, pending: Pending) -> None:
        raise NotImplementedError

    def _land(self, pending: Pending, outcome: Any) -> None:
        raise NotImplementedError

    def _spawn(self, aw: Awaitable[Any]) -> Any:
        raise NotImplementedError

    def _call_key(self, call: Call) -> Any:
        args = call[ARGS] or ()
        kwargs = call[KWARGS] or {}
        if self.key is not None:
            key = self.key(*args, **kwargs)
        else:
            key = (args, tuple(sorted(kwargs.items())) if kwargs else ())
        try:
            hash(key)
        except TypeError:
            raise TypeError(
                f"Cache needs hashable arguments to memoize {qualname(call[HANDLER])}; pass "
                f"key=lambda *args, **kwargs: ... to Cache to compute a hashable key"
            ) from None
        return (call[HANDLER], key)

    def _enter_call(self, call: Call, i: int) -> Step:
        key = self._call_key(call)
        now = self.clock.now()
        hit = self._memo.get(key)
        if hit is not None:
            age = now - hit[0]
            if age < self.ttl:
                self._events.emit_call("cache.hit", call)
                return Short(hit[1])
            if self.stale_while_revalidate and age < self.ttl + self.stale_while_revalidate:
                if key not in self._flights:
                    refresh = Pending("", key, None, None, now)
                    self._lead(refresh)
                    task = self._spawn(self._refresh_call(call, refresh))
                    task.add_done_callback(lambda _: self._land(refresh, None))
                self._events.emit_call(
                    "cache.served_stale", call, why="revalidating"
                )
                return Short(hit[1])
        pending = Pending("", key, None, None, now)
        pending.stale = hit
        call[i] = pending
        flight = self._flights.get(key)
        if flight is not None:
            return self._wait_call(call, i, flight)
        self._lead(pending)
        self._events.emit_call("cache.miss", call)
        return None

    async def _wait_call(self, call: Call, i: int, flight: Flight) -> Short | None:
        outcome = await flight.wait()
        if outcome is not None:
            call[i] = None
            self._events.emit_call("cache.hit", call, waited=True)
            return Short(outcome[0])
        return None  # the leader failed: run the function ourselves

    def _exit_call(
        self, call: Call, pending: Pending, result: Any, error: BaseException | None
    ) -> Step:
        outcome = None
        try:
            if error is None:
                if isinstance(result, ClientResponse):
                    self._events.emit_call(
                        "cache.not_stored", call,
                        reason="a ClientResponse result; return the data instead",
                    )
                    return None
                self._memo[pending.fkey] = (self.clock.now(), result)
                outcome = (result,)
                self._events.emit_call("cache.stored", call)
                return None
            hit = pending.stale
            if (
                hit is not None
                and isinstance(error, Exception)
                and self.clock.now() - hit[0] < self.ttl + self.stale_if_error
            ):
                outcome = (hit[1],)
                self._events.emit_call("cache.served_stale", call, why="error")
                return Short(hit[1])
            return None
        finally:
            self._land(pending, outcome)

    async def _refresh_call(self, call: Call, pending: Pending) -> None:
        outcome = None
        try:
            result = await call[HANDLER](*(call[ARGS] or ()), **(call[KWARGS] or {}))
            if not isinstance(result, ClientResponse):
                self._memo[pending.fkey] = (self.clock.now(), result)
                outcome = (result,)
        except Exception as exc:
            self._events.emit_call(
                "cache.refresh_failed", call, level=logging.INFO,
                error=type(exc).__name__,
            )
        finally:
            self._land(pending, outcome)

