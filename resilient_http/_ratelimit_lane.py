"""The keys of a ``RateLimit`` in this process: a :class:`Lane` per key (its bucket, waiters
and counts), and how the layer finds, creates, forgets and shows them (:class:`Lanes`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from resilient_http._bucket import TokenBucket
from resilient_http._bucket_store import BucketStore, SharedStore, evict
from resilient_http._clock import Clock
from resilient_http._middleware import ARGS, KWARGS, REQUEST, Call
from resilient_http._ratelimit_shared import SharedPath
from resilient_http._waitqueue import WaitQueue

__all__ = ["Lane", "Lanes"]


class Lane:
    """One key in this process: its bucket, its waiters, requests in flight, its timer; with
    a shared store also the key's name there and the reserved slots due but not yet handed
    out (``ready``).

    ``own`` says the bucket is exactly a :class:`~resilient_http._bucket.TokenBucket` (the
    memory store's): ``enter`` then takes its free tokens with the bucket's arithmetic
    written out inline (see :meth:`TokenBucket.try_take
    <resilient_http._bucket.TokenBucket.try_take>`), not through a method call. Any other
    bucket (a store's own class, the shared path's local fallback) goes through
    ``try_take``.
    """

    __slots__ = (
        "bucket", "own", "queue", "waiting", "inflight", "handle", "loop", "waited", "name",
        "ready",
    )

    def __init__(self, bucket: TokenBucket, name: str = "") -> None:
        self.bucket = bucket
        self.own = type(bucket) is TokenBucket
        self.name = name
        self.ready = 0
        self.queue = WaitQueue()
        self.waiting = 0
        self.inflight = 0
        self.handle: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Seconds waited for a token, by id of the call, from the grant to the call's exit.
        self.waited: dict[int, float] = {}

    def adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """First wait on ``loop`` (a layer reused across ``asyncio.run`` calls, say).

        The counts stay: a call in flight holds its slot whatever loop it runs on, and gives
        it back in its ``exit``. What belongs to the old loop moves: its timer is re-armed on
        ``loop`` (by the next dispatch), and the waiters of a loop that was closed without
        cancelling them (they can never run again) are dropped. The waiting itself (futures,
        timer) serves one running loop at a time: while the old loop runs in another thread,
        a wait on this key from ``loop`` raises ``RuntimeError``.
        """
        old = self.loop
        if old is not None:
            if old.is_running():
                raise RuntimeError(
                    f"RateLimit: requests of one key wait on event loop {old!r}, which is "
                    f"running in another thread; a RateLimit serves one running event loop "
                    f"at a time (loops that run one after another are fine): give each "
                    f"thread its own RateLimit"
                )
            if self.handle is not None:
                self.handle.cancel()
                self.handle = None
            if self.waiting:
                self.waiting -= self.queue.drop(_on_closed_loop)
        self.loop = loop

    def idle(self, now: float) -> bool:
        """Whether the lane can be forgotten: nobody waits or is in flight, no timer, and its
        bucket is indistinguishable from a new one."""
        return (
            not self.waiting
            and not self.inflight
            and self.handle is None
            and self.bucket.is_idle(now)
        )


class Lanes:
    """The lanes half of :class:`~resilient_http.RateLimit` (a mixin: the attributes below
    are the layer's): the key of a call, its lane (created on first use, idle ones forgotten
    past ``max_keys``), and the public views of a key's state."""

    __slots__ = ()

    key: Callable[..., Hashable] | None
    max_keys: int
    burst: float
    recovery: float
    max_pause: float
    store: BucketStore | SharedStore
    clock: Clock
    _lanes: dict[Hashable, Lane]
    _per_second: float
    _shared: SharedPath | None

    def _key(self, call: Call) -> Hashable:
        """The key of a call other than a request with the default key."""
        request = call[REQUEST]
        keyfn: Callable[..., Hashable] | None = self.key
        if keyfn is None:
            return None  # decorator mode: one bucket for all calls
        if request is not None:
            return keyfn(request)
        return keyfn(*call[ARGS], **(call[KWARGS] or {}))

    def _new_lane(self, key: Hashable) -> Lane:
        """Make and keep the lane of ``key`` (forgetting idle lanes past ``max_keys``)."""
        now = self.clock.now()
        lanes = self._lanes
        if len(lanes) >= self.max_keys:
            evict(lanes, self.max_keys, lambda lane: lane.idle(now))
        if self._shared is not None:
            lane = Lane(self._shared.local_bucket(now), self._shared.buckets.name(key))
        else:
            lane = Lane(self.store.bucket(key, now, self._new_bucket))  # type: ignore[union-attr]
        lanes[key] = lane
        return lane

    def _new_bucket(self, now: float) -> TokenBucket:
        # A server's headers never slow a key below one request per max_pause.
        return TokenBucket(
            self._per_second, self.burst, now, self.recovery, min_rate=1.0 / self.max_pause
        )

    # -- introspection --------------------------------------------------------------------

    def bucket(self, key: Hashable) -> TokenBucket | None:
        """The bucket state of ``key`` (e.g. ``("https", "api.example.com", 443)``), or
        ``None`` if no request used it yet. For tests and monitoring. With a shared store,
        the in-process bucket the ``"local"`` fallback uses."""
        lane = self._lanes.get(key)
        return None if lane is None else lane.bucket

    def waiting(self, key: Hashable) -> int:
        """How many requests of ``key`` wait for a token or a slot."""
        lane = self._lanes.get(key)
        return 0 if lane is None else lane.waiting

    def in_flight(self, key: Hashable) -> int:
        """How many requests of ``key`` hold a token and are not finished."""
        lane = self._lanes.get(key)
        return 0 if lane is None else lane.inflight


def _on_closed_loop(fut: asyncio.Future[None]) -> bool:
    return fut.get_loop().is_closed()
