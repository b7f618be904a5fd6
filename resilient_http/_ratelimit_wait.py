"""``RateLimit``'s slow paths: waiting for a token (the key's queue and its one timer) and
adapting to a response's limits. The rules are in :mod:`resilient_http.ratelimit`; the fast
path (a free token, a response without rate-limit headers) stays in its ``enter`` and
``exit``, which come here only when they have to."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, NoReturn

from aiohttp import ClientResponse

from resilient_http._bucket import EPS, adapt
from resilient_http._clock import Clock
from resilient_http._info import add, info
from resilient_http._middleware import Call, Step
from resilient_http._priority import LEVEL_NAMES, PRIORITY
from resilient_http._ratelimit_headers import Limits, parse_limits
from resilient_http._ratelimit_lane import Lane
from resilient_http._ratelimit_shared import SharedPath
from resilient_http.errors import RateLimitExceeded
from resilient_http.events import Emitter
from resilient_http.timeout import current_deadline

__all__ = ["Waiting", "UNLIMITED"]

UNLIMITED = (1 << 30) - 1
"""``max_concurrency=None``: a count no key reaches (a billion requests in flight), and one
small enough (one 30-bit digit) for CPython's specialised int comparison in ``enter``, which
``sys.maxsize`` is not."""


def tell(lane: Lane, call: Call, result: Any) -> None:
    """Add the seconds ``call`` waited for its token, if it did, to ``result``'s info."""
    seconds = lane.waited.pop(id(call), None)
    if seconds is not None and isinstance(result, ClientResponse):
        add(result, waited=info(result).waited + seconds)


class Waiting:
    """The waiting and adapting half of :class:`~resilient_http.RateLimit` (a mixin: the
    attributes below are the layer's)."""

    __slots__ = ()

    clock: Clock
    max_wait: float | None
    max_pause: float
    _emit: Emitter
    _limit: int
    _now: Any
    _shared: SharedPath | None

    # -- waiting --------------------------------------------------------------------------

    def _queue(self, lane: Lane, call: Call) -> Awaitable[None]:
        if self._shared is not None:
            return self._shared.queue(lane, call)
        loop = asyncio.get_running_loop()
        if lane.loop is not loop:
            lane.adopt(loop)
        now = self.clock.now()
        prio = PRIORITY.get()
        wait = lane.bucket.wait_for(lane.queue.ahead(prio) + 1, now)
        bound = self._bound(now)
        if bound is not None and wait > bound + EPS:
            self._reject(call, wait, bound)
        fut: asyncio.Future[None] = loop.create_future()
        lane.queue.push(fut, prio)
        lane.waiting += 1
        self._dispatch(lane)
        return self._wait(lane, fut, prio, now, call)

    def _bound(self, now: float) -> float | None:
        """The longest wait allowed from ``now``: ``max_wait`` or the deadline, if any."""
        bound = self.max_wait
        deadline = current_deadline()
        if deadline is not None and (bound is None or deadline - now < bound):
            bound = max(0.0, deadline - now)
        return bound

    def _reject(self, call: Call, wait: float, bound: float) -> NoReturn:
        what = "max_wait" if bound == self.max_wait else "the deadline"
        self._emit.emit_call("ratelimit.rejected", call, logging.INFO, wait=wait, bound=bound)
        raise RateLimitExceeded(
            f"a token would take {wait:.3g} s, longer than {what} ({bound:.3g} s)", wait=wait
        )

    async def _wait(
        self, lane: Lane, fut: asyncio.Future[None], prio: int, since: float, call: Call
    ) -> None:
        expiry = None
        if self.max_wait is not None and not fut.done():
            expiry = self.clock.call_at(since + self.max_wait, self._expire, lane, fut, prio, call)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.cancelled():  # still queued: just leave the queue
                self._discard(lane, prio)
            elif fut.exception() is None:  # granted, but the call is gone: undo the grant
                lane.inflight -= 1
                if self._shared is not None:
                    self._shared.give_back(lane)
                else:
                    lane.bucket.give_back(self.clock.now())
                    self._dispatch(lane)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        waited = lane.waited[id(call)] = self.clock.now() - since
        if self._emit.enabled():
            self._emit.emit_call(
                "ratelimit.waited", call, logging.DEBUG, seconds=waited,
                priority=LEVEL_NAMES[prio],
            )

    def _dispatch(self, lane: Lane, now: float | None = None) -> None:
        """Serve waiters while tokens and slots allow; else arm the key's one timer.

        The timer passes the time it was *due*, not the time it ran: tokens are granted as of
        then, so the event loop's lateness delays a grant but never loses a token (with
        ``burst=1`` every late timer would otherwise shave a little off the rate).
        """
        if not lane.waiting:
            return
        if self._shared is not None:
            self._shared.serve(lane)
            return
        if now is None:
            now = self._now()
        bucket = lane.bucket
        queue = lane.queue
        limit = self._limit
        while lane.waiting and lane.inflight < limit:
            if not bucket.try_take(now):
                if lane.handle is None:
                    when = now + bucket.wait_for(1.0, now)
                    lane.handle = self.clock.call_at(when, self._on_timer, lane, when)
                return
            fut = queue.pop()
            if fut is None:  # only cancelled waiters, not yet discarded: nobody to serve
                bucket.give_back(now)
                return
            lane.waiting -= 1
            lane.inflight += 1
            fut.set_result(None)

    def _serve(self, lane: Lane) -> None:
        """A call ended with waiters queued: serve them, on their loop (the loop that waits on
        the key may run in another thread, whose futures and timer only it may touch)."""
        if self._limit == UNLIMITED and lane.handle is not None:
            return  # no slot to free: the timer serves them when the next token is due
        owner = lane.loop
        if owner is None or owner is asyncio.get_running_loop() or not owner.is_running():
            self._dispatch(lane)
        else:
            owner.call_soon_threadsafe(self._dispatch, lane)

    def _on_timer(self, lane: Lane, when: float) -> None:
        lane.handle = None
        self._dispatch(lane, when)

    def _discard(self, lane: Lane, prio: int) -> None:
        lane.waiting -= 1
        lane.queue.discard(prio)
        if not lane.waiting and lane.handle is not None:
            lane.handle.cancel()
            lane.handle = None

    def _expire(self, lane: Lane, fut: asyncio.Future[None], prio: int, call: Call) -> None:
        if fut.done():
            return
        wait = self.max_wait or 0.0
        self._emit.emit_call("ratelimit.rejected", call, logging.INFO, wait=wait, bound=wait)
        fut.set_exception(RateLimitExceeded(f"no token within max_wait ({wait:.3g} s)", wait=wait))
        self._discard(lane, prio)

    # -- adapting -------------------------------------------------------------------------

    def _adapt(self, lane: Lane, status: int, headers: Any, call: Call) -> Step:
        """Apply a response's limits, then serve waiters as ``exit`` does."""
        limits: Limits = parse_limits(
            headers, time.time(), retry_after=status == 429 or status == 503
        )
        if self._shared is not None:
            return self._shared.adapt(lane, limits, status, call)
        bucket = lane.bucket
        old = bucket.rate
        reason, pause = adapt(
            bucket, limits, status, self.clock.now(), lane.inflight, self.max_pause
        )
        if reason:
            self._adapted(call, old, bucket.rate, reason, pause, status)
        if lane.waiting and (self._limit != UNLIMITED or lane.handle is None):
            self._dispatch(lane)
        return None

    def _adapted(
        self, call: Call, old: float, new: float, reason: str, pause: float, status: int
    ) -> None:
        if self._emit.enabled(logging.INFO):
            self._emit.emit_call(
                "ratelimit.adapted",
                call,
                logging.INFO,
                old_rate=old,
                new_rate=new,
                reason=reason,
                pause=pause or None,
                status=status,
            )
