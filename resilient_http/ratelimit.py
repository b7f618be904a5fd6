"""``RateLimit``: fair token buckets per host that adapt to the server's own limits.

One token bucket per key (default: scheme, host and port), ``rate`` tokens per ``per``
seconds, ``burst`` deep (default ``rate``: a fresh bucket lets ``burst`` requests go at once,
then ``rate`` per ``per``). Each request takes a token; inside ``Retry`` each *attempt* does.

Waiting. When no token is free the request joins its key's queue: first in, first out within
a priority class; urgent before normal before background. Anti-starvation rule: a class with
waiters is passed over at most four times in a row, so while urgent work keeps tokens scarce
background work still gets one token in five (one in six when all three classes wait; see
:class:`resilient_http._waitqueue.WaitQueue`). One timer per key is
armed for the moment the head of the queue can go, on the layer's clock: a token wakes exactly
one waiter, however many wait (no thundering herd). ``max_wait`` and an outer ``Timeout``'s
deadline bound the wait: when the computed wait is longer, :class:`RateLimitExceeded` is
raised at once and no token is taken. A waiter cancelled takes no token and leaves the queue
consistent.

Adapting (``adaptive=True``). On the way out the layer reads the response: a 429 or 503 with
``Retry-After`` pauses the key's bucket (every request sharing it waits, capped by
``max_pause``); a declared policy (``RateLimit-Policy: "default";q=50;w=1``) lowers the rate to
``q/w``; ``RateLimit``'s remaining quota, ``X-RateLimit-Remaining``/``-Reset`` (GitHub's epoch
seconds, Twitter's ``X-Rate-Limit-*``) cap the tokens left, pause until the reset when none
remain, and without a declared policy set the rate to ``remaining / reset``. A 429 without a
declared policy halves the rate (once per hold). The rate then climbs back additively
(``rate / recovery`` per second) up to the configured rate. Malformed headers are ignored.
The exact rules: :func:`resilient_http._bucket.adapt`.

Why not just ``aiolimiter``. ``aiolimiter.AsyncLimiter`` is the reference we measure against
(its leaky-bucket arithmetic is the same as ours for a fixed rate, and its heap of waiters
woken one at a time is the same idea), but it cannot serve as this layer's engine: its
``acquire`` is a coroutine, so even a free token costs an ``await`` (the engine takes free
tokens synchronously inside ``enter``); it reads ``loop.time()`` only, so tests would have to
sleep instead of driving a ``FakeClock``; its rate is fixed (no pause, no lowering, no
recovery); it cannot say how long a wait *would* be without queueing, so it cannot refuse a
wait past ``max_wait`` or a deadline without taking a token; it has no priorities and no
per-key buckets. Hence :mod:`resilient_http._bucket`; aiolimiter stays the baseline of
``benchmarks/ratelimit_overhead.py`` and ``benchmarks/ratelimit_accuracy.py``.

Threads. The counts and buckets are shared by every event loop using the layer, in any
thread: admission claims the slot right after checking it, with no call in between, so on
CPython no other thread runs in between and ``max_concurrency`` holds across threads (the
token is taken by a method with no call inside either, unless the server lowered the rate).
The waiting (futures, the key's timer) belongs to
one running loop: the first that had to wait on the key, until it stops; a call on another
thread's loop that has to wait meanwhile raises ``RuntimeError``, and a call ending there
hands the serving of the waiters to their loop (``call_soon_threadsafe``).

Bucket state lives in a store; the queue of waiters is always local to the process. The
default :class:`MemoryStore` keeps it in this process and a free token is taken without an
``await``. A shared store (``store=rh.RedisStore(...)``) makes one limit hold across many
processes: each permit is reserved on the server in one round trip, and a server's
``Retry-After`` or rate-limit headers seen by one process pause or slow the key for all (see
:mod:`resilient_http._ratelimit_shared` and :mod:`resilient_http.redis.ratelimit`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from aiohttp import ClientResponse, ClientResponseError
from multidict import istr

from resilient_http._bucket import EPS, TokenBucket, adapt
from resilient_http._bucket_store import BucketStore, MemoryStore, SharedStore, evict
from resilient_http._clock import Clock, LoopClock
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._info import add, info
from resilient_http._middleware import ARGS, KWARGS, REQUEST, Call, Layer, Step
from resilient_http._priority import LEVEL_NAMES, PRIORITY, priority
from resilient_http._ratelimit_headers import Limits, parse_limits
from resilient_http._ratelimit_shared import SharedPath
from resilient_http._validate import (
    callable_or_none,
    clock_or_default,
    duration,
    flag,
    number,
    optional_duration,
    positive_int,
    show,
)
from resilient_http._waitqueue import WaitQueue
from resilient_http.errors import RateLimitExceeded
from resilient_http.events import DEBUG_LOG, Emitter, EventHook
from resilient_http.timeout import current_deadline

__all__ = ["RateLimit", "priority", "BucketStore", "MemoryStore", "SharedStore"]

# Headers whose presence makes a response worth parsing (istr: cheaper lookups). Without
# any of them (and without a 429/503) parse_limits finds nothing that adapt() acts on.
_RATELIMIT = istr("RateLimit")
_POLICY = istr("RateLimit-Policy")
_REMAINING = istr("RateLimit-Remaining")
_X_REMAINING = istr("X-RateLimit-Remaining")
_X_REMAINING_TWITTER = istr("X-Rate-Limit-Remaining")
_NO_MEMO: tuple[Any, Any] = (None, None)


def _tell(lane: _Lane, call: Call, result: Any) -> None:
    """Add the seconds ``call`` waited for its token, if it did, to ``result``'s info."""
    seconds = lane.waited.pop(id(call), None)
    if seconds is not None and isinstance(result, ClientResponse):
        add(result, waited=info(result).waited + seconds)


class _Lane:
    """One key in this process: its bucket, its waiters, requests in flight, its timer; with
    a shared store also the key's name there and the reserved slots due but not yet handed
    out (``ready``)."""

    __slots__ = (
        "bucket", "queue", "waiting", "inflight", "handle", "loop", "waited", "name", "ready",
    )

    def __init__(self, bucket: TokenBucket, name: str = "") -> None:
        self.bucket = bucket
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


def _on_closed_loop(fut: asyncio.Future[None]) -> bool:
    return fut.get_loop().is_closed()


class RateLimit(Layer):
    """Limit requests to ``rate`` per ``per`` seconds, per host, fairly, adapting to the
    server's own limits (see the module docstring for the rules).

    Args:
        rate: requests allowed per ``per`` seconds (> 0; fractions allowed).
        per: the period, seconds or ``timedelta``. Default 1.
        burst: how many requests may go at once from a full bucket (>= 1). Default ``rate``
            (note: a fresh bucket therefore lets ``rate`` requests go immediately, so over the
            first period up to ``burst + rate`` requests are sent; pass ``burst=1`` to send
            strictly evenly).
        key: what shares a bucket. Default: scheme, host and port of the request URL; in
            decorator mode, one bucket for all calls. A callable receives the
            ``aiohttp.ClientRequest`` (decorator mode: the call's arguments) and returns a
            hashable key. One ``RateLimit`` object shared by several sessions shares its buckets.
        max_wait: longest wait for a token, seconds; ``0`` never waits. Default ``None``
            (unbounded, except by an outer ``Timeout``'s deadline, which always applies).
            A wait computed to be longer raises ``RateLimitExceeded`` at once, without taking
            a token; a wait that grows past it (the bucket was paused meanwhile) raises it
            when ``max_wait`` has passed.
        adaptive: follow the server's ``Retry-After``, ``RateLimit``, ``RateLimit-Policy`` and
            ``X-RateLimit-*`` headers and 429s. Default ``True``.
        max_concurrency: at most this many requests in flight per key (a bulkhead; the slot
            is held until the response is read, or the error/cancellation). Default ``None``.
        recovery: seconds an adapted rate takes to climb from zero back to ``rate`` (additive
            increase of ``rate / recovery`` per second). Default 10.
        max_pause: longest pause a server's ``Retry-After``/reset can impose, seconds; the
            rate is never adapted below one request per ``max_pause`` either. Default 60.
        store: where the token arithmetic lives: a :class:`BucketStore` (in this process;
            default a new :class:`MemoryStore`), or a shared store such as
            :class:`~resilient_http.RedisStore`, which makes the limit hold across every
            process using it (one awaited round trip per permit; see
            :mod:`resilient_http._ratelimit_shared`).
        max_keys: keys (hosts) tracked before idle ones are forgotten. Default 10 000.
        clock: the time source; default the event loop's. Tests pass a ``FakeClock``.
        on_event: hook(s) receiving ``ratelimit.acquired`` (a token taken at once),
            ``ratelimit.waited`` (seconds), ``ratelimit.rejected`` (wait, bound) and
            ``ratelimit.adapted`` (old and new rate in requests/second, reason, pause) events.

    Raises:
        RateLimitExceeded: a wait would exceed ``max_wait`` or the deadline (no token taken).

    Pickling or copying it (``copy.copy``, ``copy.deepcopy``) gives a new layer with the same
    configuration and none of the state (see the README's "Pickling and copying").
    """

    __slots__ = (
        "_config",
        "rate",
        "per",
        "burst",
        "key",
        "max_wait",
        "adaptive",
        "max_concurrency",
        "recovery",
        "max_pause",
        "store",
        "max_keys",
        "clock",
        "_emit",
        "_lanes",
        "_per_second",
        "_limit",
        "_now",
        "_memo",
        "_shared",
    )

    __reduce__ = fresh_reduce

    def __init__(
        self,
        rate: float,
        per: float | timedelta = 1.0,
        *,
        burst: float | None = None,
        key: Callable[..., Hashable] | None = None,
        max_wait: float | timedelta | None = None,
        adaptive: bool = True,
        max_concurrency: int | None = None,
        recovery: float | timedelta = 10.0,
        max_pause: float | timedelta = 60.0,
        store: BucketStore | SharedStore | None = None,
        max_keys: int = 10_000,
        clock: Clock | None = None,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        self._config = config_of(locals())
        self.rate: float = number("rate", rate, minimum=0.0, inclusive=False)
        self.per: float = duration("per", per)
        self.burst: float = (
            self.rate if burst is None else number("burst", burst, minimum=1.0)
        )
        if self.burst < 1.0:
            raise ValueError(
                f"burst defaults to rate, which is {show(rate)} (< 1): pass burst=1 or more"
            )
        self.key = callable_or_none("key", key)
        self.max_wait = optional_duration("max_wait", max_wait, allow_zero=True)
        self.adaptive = flag("adaptive", adaptive)
        self.max_concurrency = (
            None if max_concurrency is None else positive_int("max_concurrency", max_concurrency)
        )
        self._per_second = self.rate / self.per
        self.recovery = duration("recovery", recovery)
        self.max_pause = duration("max_pause", max_pause)
        self.max_keys = positive_int("max_keys", max_keys)
        self._shared: SharedPath | None = None
        if store is None:
            store = MemoryStore(max_keys)
        elif not isinstance(store, BucketStore):
            if not isinstance(store, SharedStore):
                raise TypeError(
                    "store must be a BucketStore (a bucket() method) or a shared store such as "
                    f"rh.RedisStore (a rate_buckets() method), got {show(store)}"
                )
            self._shared = SharedPath(self, store)
        self.store: BucketStore | SharedStore = store
        self.clock: Clock = clock_or_default(clock)
        # The loop clock's now() is time.monotonic(): call it directly on the fast path.
        self._now = time.monotonic if type(self.clock) is LoopClock else self.clock.now
        # (URL, its lane) of the last request (see enter); reset when lanes are evicted.
        self._memo: tuple[Any, Any] = _NO_MEMO
        self._emit = Emitter("RateLimit", on_event)
        self._lanes: dict[Hashable, _Lane] = {}
        self._limit = sys.maxsize if self.max_concurrency is None else self.max_concurrency

    # -- the hooks ------------------------------------------------------------------------

    def enter(self, call: Call, i: int) -> Step:
        request = call[REQUEST]
        if self.key is None and request is not None:
            # The lane of the last URL is remembered: yarl hands out one URL object per URL
            # string, so a request to the same URL as the one before finds its lane by one
            # identity check instead of three URL properties, a tuple and its hash (~2k
            # instructions). A tuple, so that it is read and replaced in one step.
            url = request.url
            memo = self._memo
            if memo[0] is url:
                lane = memo[1]
            else:
                key: Hashable = (url.scheme, url.raw_host, url.port)
                lane = self._lanes.get(key)
                if lane is None:
                    lane = self._new_lane(key)
                self._memo = (url, lane)
        else:
            key = self._key(call)
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._new_lane(key)
        call[i] = lane
        if not lane.waiting and lane.inflight < self._limit:
            # The slot is claimed right after the check, with no call between them: no other
            # thread's loop can take the same last slot in between (see the module docstring).
            lane.inflight += 1
            if lane.bucket.try_take(self._now()):
                if DEBUG_LOG.on or self._emit.hooks:
                    self._emit.emit_call("ratelimit.acquired", call)
                return None
            lane.inflight -= 1
        return self._queue(lane, call)

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        lane: _Lane = call[i]
        if lane.waited:  # a call of this lane waited for its token: this one? (rh.info)
            _tell(lane, call, result)
        lane.inflight -= 1
        if self.adaptive:
            if isinstance(result, ClientResponse):
                status = result.status
                headers: Any = result.headers
            elif isinstance(error, ClientResponseError) and error.headers is not None:
                status = error.status
                headers = error.headers
            else:
                headers = None
            # Most responses carry no rate-limit header: five membership tests written out
            # (a loop over the names costs ~70 % more), and nothing is parsed.
            if headers is not None and (
                status == 429
                or status == 503
                or _RATELIMIT in headers
                or _POLICY in headers
                or _REMAINING in headers
                or _X_REMAINING in headers
                or _X_REMAINING_TWITTER in headers
            ):
                return self._adapt(lane, status, headers, call)
        if lane.waiting and (self._limit != sys.maxsize or lane.handle is None):
            self._serve(lane)
        return None

    def _key(self, call: Call) -> Hashable:
        """The key of a call other than a request with the default key."""
        request = call[REQUEST]
        keyfn: Callable[..., Hashable] | None = self.key
        if keyfn is None:
            return None  # decorator mode: one bucket for all calls
        if request is not None:
            return keyfn(request)
        return keyfn(*call[ARGS], **(call[KWARGS] or {}))

    # -- waiting --------------------------------------------------------------------------

    def _new_lane(self, key: Hashable) -> _Lane:
        now = self.clock.now()
        lanes = self._lanes
        if len(lanes) >= self.max_keys:
            self._memo = _NO_MEMO  # it may hold a lane evicted here
            evict(
                lanes,
                self.max_keys,
                lambda lane: (
                    not lane.waiting
                    and not lane.inflight
                    and lane.handle is None
                    and lane.bucket.is_idle(now)
                ),
            )
        if self._shared is not None:
            lane = _Lane(self._shared.local_bucket(now), self._shared.buckets.name(key))
        else:
            lane = _Lane(self.store.bucket(key, now, self._new_bucket))  # type: ignore[union-attr]
        lanes[key] = lane
        return lane

    def _new_bucket(self, now: float) -> TokenBucket:
        # A server's headers never slow a key below one request per max_pause.
        return TokenBucket(
            self._per_second, self.burst, now, self.recovery, min_rate=1.0 / self.max_pause
        )

    def _queue(self, lane: _Lane, call: Call) -> Awaitable[None]:
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
        self, lane: _Lane, fut: asyncio.Future[None], prio: int, since: float, call: Call
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

    def _dispatch(self, lane: _Lane, now: float | None = None) -> None:
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

    def _serve(self, lane: _Lane) -> None:
        """A call ended with waiters queued: serve them, on their loop (the loop that waits on
        the key may run in another thread, whose futures and timer only it may touch)."""
        owner = lane.loop
        if owner is None or owner is asyncio.get_running_loop() or not owner.is_running():
            self._dispatch(lane)
        else:
            owner.call_soon_threadsafe(self._dispatch, lane)

    def _on_timer(self, lane: _Lane, when: float) -> None:
        lane.handle = None
        self._dispatch(lane, when)

    def _discard(self, lane: _Lane, prio: int) -> None:
        lane.waiting -= 1
        lane.queue.discard(prio)
        if not lane.waiting and lane.handle is not None:
            lane.handle.cancel()
            lane.handle = None

    def _expire(self, lane: _Lane, fut: asyncio.Future[None], prio: int, call: Call) -> None:
        if fut.done():
            return
        wait = self.max_wait or 0.0
        self._emit.emit_call("ratelimit.rejected", call, logging.INFO, wait=wait, bound=wait)
        fut.set_exception(RateLimitExceeded(f"no token within max_wait ({wait:.3g} s)", wait=wait))
        self._discard(lane, prio)

    # -- adapting -------------------------------------------------------------------------

    def _adapt(self, lane: _Lane, status: int, headers: Any, call: Call) -> Step:
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
        if lane.waiting and (self._limit != sys.maxsize or lane.handle is None):
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

    def __repr__(self) -> str:
        extra = "" if self.per == 1.0 else f", per={self.per:g}"
        if self.burst != self.rate:
            extra += f", burst={self.burst:g}"
        if self.max_wait is not None:
            extra += f", max_wait={self.max_wait:g}"
        if self.max_concurrency is not None:
            extra += f", max_concurrency={self.max_concurrency}"
        if not self.adaptive:
            extra += ", adaptive=False"
        return f"RateLimit({self.rate:g}{extra})"

