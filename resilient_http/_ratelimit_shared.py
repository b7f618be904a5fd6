"""``RateLimit`` with a shared store (``store=rh.RedisStore(...)``): the await path.

Every permit costs one awaited call to the store, which reserves the next slot on the shared
clock and says how long until it (:meth:`SharedBuckets.reserve
<resilient_http._bucket_store.SharedBuckets.reserve>`); there is no polling. Waiting stays in
the process: the caller joins its key's local queue (FIFO within a priority class, as with
the memory store), and each reserved slot, when its time comes, goes to whoever heads the
queue then. So priorities still order this process's requests, and a slot reserved by a
request that was cancelled meanwhile serves the next one (or, with nobody waiting, is not
used: the fleet then runs a little under its rate, never over it).

Bounds keep their meaning: the store refuses a wait past ``max_wait`` or the deadline
without reserving (``RateLimitExceeded`` at once), and a waiter passed over by higher
priorities past ``max_wait`` expires as with the memory store.

When the store cannot answer (it says so within its ``socket_timeout``, or at once while
degraded), its ``on_error`` decides: ``"local"`` reserves from the lane's in-process bucket,
which runs at ``rate / processes`` (and ``burst / processes``, at least 1; empty at first
and kept empty while the shared bucket answers, so a switch adds no burst, at start-up or
later); ``"open"`` lets the request go; ``"closed"`` raises
:class:`~resilient_http.StoreUnavailable`. A response's rate-limit headers are applied to
the shared bucket before the response is handed on (one more call, only for responses that
carry them), and to the in-process one too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from resilient_http._bucket import EPS, TokenBucket, adapt
from resilient_http._bucket_store import BucketSpec, SharedStore
from resilient_http._middleware import Call
from resilient_http._priority import PRIORITY
from resilient_http._ratelimit_headers import Limits
from resilient_http.errors import StoreUnavailable

if TYPE_CHECKING:
    from resilient_http._ratelimit_lane import Lane as _Lane
    from resilient_http.ratelimit import RateLimit

__all__ = ["SharedPath", "LocalBucket"]


class LocalBucket(TokenBucket):
    """A shared lane's in-process bucket, for ``on_error="local"``. Its :meth:`try_take`
    always says no, so ``enter`` never takes a permit synchronously for a shared key; the
    fallback reserves from it with the base class's arithmetic."""

    __slots__ = ()

    def try_take(self, now: float) -> bool:
        return False


class SharedPath:
    """The shared-store half of one :class:`~resilient_http.RateLimit` (see the module
    docstring)."""

    __slots__ = ("layer", "store", "buckets")

    def __init__(self, layer: RateLimit, store: SharedStore) -> None:
        self.layer = layer
        self.store = store
        spec = BucketSpec(layer._per_second, layer.burst, layer.recovery, layer.max_pause)
        self.buckets = store.rate_buckets(spec)

    def local_bucket(self, now: float) -> LocalBucket:
        """A new lane's in-process bucket: this process's share of the limit. It starts
        empty: a process that degrades before the shared bucket ever answered (at start-up)
        must not add its own burst to what the fleet already spent."""
        layer = self.layer
        n = self.store.processes
        bucket = LocalBucket(
            layer._per_second / n,
            max(1.0, layer.burst / n),
            now,
            layer.recovery,
            min_rate=1.0 / layer.max_pause,
        )
        bucket.tokens = 0.0
        return bucket

    # -- taking ---------------------------------------------------------------------------

    def queue(self, lane: _Lane, call: Call) -> Awaitable[None]:
        """Join the key's queue, then reserve a slot for it (the awaited part)."""
        loop = asyncio.get_running_loop()
        if lane.loop is not loop:
            lane.adopt(loop)
        prio = PRIORITY.get()
        fut: asyncio.Future[None] = loop.create_future()
        lane.queue.push(fut, prio)
        lane.waiting += 1
        return self._take(lane, fut, prio, call)

    async def _take(
        self, lane: _Lane, fut: asyncio.Future[None], prio: int, call: Call
    ) -> None:
        layer = self.layer
        clock = layer.clock
        since = clock.now()
        bound = layer._bound(since)
        try:
            reserved, wait = await self._reserve(lane, bound)
        except BaseException:  # cancelled, or StoreUnavailable with on_error="closed"
            if not fut.done():
                fut.cancel()
                layer._discard(lane, prio)
            elif not fut.cancelled():  # granted meanwhile by another slot: pass it on
                lane.inflight -= 1
                self.give_back(lane)
            raise
        if not reserved:
            if not fut.done():
                fut.cancel()
                layer._discard(lane, prio)
                layer._reject(call, wait, bound or 0.0)
        elif wait <= 0.0:
            self._grant(lane)
        else:
            clock.call_at(clock.now() + wait, self._grant, lane)
        await layer._wait(lane, fut, prio, since, call)

    async def _reserve(self, lane: _Lane, bound: float | None) -> tuple[bool, float]:
        try:
            reply = await self.buckets.reserve(lane.name, bound)
            # While the shared bucket answers, the local one holds no spare tokens: a switch
            # to the fallback goes on at this process's share, without a burst on top.
            lane.bucket.cap_tokens(0.0, self.layer.clock.now())
            return reply
        except StoreUnavailable:
            mode = self.store.on_error
            if mode == "closed":
                raise
            if mode == "open":
                return True, 0.0
        bucket = lane.bucket  # "local": this process's share, reserved as a debt
        wait = bucket.wait_for(1.0, self.layer.clock.now())
        if bound is not None and wait > bound + EPS:
            return False, wait
        bucket.tokens -= 1.0
        return True, wait

    def _grant(self, lane: _Lane) -> None:
        lane.ready += 1
        self.serve(lane)

    def give_back(self, lane: _Lane) -> None:
        """A granted permit whose call went away: the next waiter gets it."""
        self._grant(lane)

    def serve(self, lane: _Lane) -> None:
        """Hand the slots whose time has come to the heads of the queue, as far as
        ``max_concurrency`` allows; slots nobody waits for are dropped."""
        limit = self.layer._limit
        while lane.ready and lane.waiting and lane.inflight < limit:
            fut = lane.queue.pop()
            if fut is None:  # only cancelled waiters, not yet discarded: the slot stays ready
                return
            lane.waiting -= 1
            lane.inflight += 1
            lane.ready -= 1
            fut.set_result(None)
        if not lane.waiting:
            lane.ready = 0

    # -- adapting -------------------------------------------------------------------------

    def adapt(self, lane: _Lane, limits: Limits, status: int, call: Call) -> Awaitable[None]:
        """Apply a response's limits to the in-process bucket now, and to the shared one
        before the response is handed on."""
        layer = self.layer
        adapt(lane.bucket, limits, status, layer.clock.now(), lane.inflight, layer.max_pause)
        if lane.waiting:
            self.serve(lane)  # what exit does for the responses it does not adapt to
        return self._adapt(lane, limits, status, call)

    async def _adapt(self, lane: _Lane, limits: Limits, status: int, call: Call) -> None:
        try:
            done = await self.buckets.adapt(lane.name, limits, status, lane.inflight)
        except StoreUnavailable:
            return  # the response stands; the next permit applies on_error
        if done.reason:
            self.layer._adapted(call, done.old_rate, done.new_rate, done.reason, done.pause,
                                status)

    def __repr__(self) -> str:
        return f"SharedPath({self.buckets!r})"
