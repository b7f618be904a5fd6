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

Threads. The counts and buckets are shared by every event loop using the layer, in any
thread: admission claims the slot right after checking it, with no call in between, so on
CPython no other thread runs in between and ``max_concurrency`` holds across threads (the
token's arithmetic has no call inside either, unless the server lowered the rate). The
waiting (futures, the key's timer) belongs to one running loop: the first that had to wait
on the key, until it stops; a call on another thread's loop that has to wait meanwhile
raises ``RuntimeError``, and a call ending there hands the serving of the waiters to their
loop (``call_soon_threadsafe``).

Bucket state lives in a store; the queue of waiters is always local to the process. The
default :class:`MemoryStore` keeps it in this process and a free token is taken without an
``await``. A shared store (``store=rh.RedisStore(...)``) makes one limit hold across many
processes: each permit is reserved on the server in one round trip, and a server's
``Retry-After`` or rate-limit headers seen by one process pause or slow the key for all (see
:mod:`resilient_http._ratelimit_shared` and :mod:`resilient_http.redis.ratelimit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import ClientResponse, ClientResponseError
from multidict import istr

from resilient_http._bucket import EPS
from resilient_http._bucket_store import BucketStore, MemoryStore, SharedStore, is_shared
from resilient_http._clock import Clock, LoopClock
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._middleware import REQUEST, Call, Layer, Step
from resilient_http._priority import priority
from resilient_http._ratelimit_lane import Lane, Lanes
from resilient_http._ratelimit_shared import SharedPath
from resilient_http._ratelimit_wait import UNLIMITED, Waiting, tell
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
from resilient_http.events import DEBUG_LOG, Emitter, EventHook

__all__ = ["RateLimit", "priority", "BucketStore", "MemoryStore", "SharedStore"]

# Headers whose presence makes a response worth parsing (istr: cheaper lookups). Without
# any of them (and without a 429/503) parse_limits finds nothing that adapt() acts on.
_RATELIMIT = istr("RateLimit")
_POLICY = istr("RateLimit-Policy")
_REMAINING = istr("RateLimit-Remaining")
_X_REMAINING = istr("X-RateLimit-Remaining")
_X_REMAINING_TWITTER = istr("X-Rate-Limit-Remaining")
_NO_MEMO: tuple[Any, Any] = (None, None)
_ONE = 1.0 - EPS  # as in TokenBucket.try_take: 0.999999 tokens are one


class RateLimit(Lanes, Waiting, Layer):
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
        "_config", "rate", "per", "burst", "key", "max_wait", "adaptive", "max_concurrency",
        "recovery", "max_pause", "store", "max_keys", "clock", "_emit", "_lanes",
        "_per_second", "_limit", "_now", "_memo", "_shared",
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
        elif is_shared(store):
            self._shared = SharedPath(self, store)
        self.store: BucketStore | SharedStore = store
        self.clock: Clock = clock_or_default(clock)
        # The loop clock's now() is time.monotonic(): call it directly on the fast path.
        self._now = time.monotonic if type(self.clock) is LoopClock else self.clock.now
        # (URL, its lane) of the last request (see enter); reset when lanes are evicted.
        self._memo: tuple[Any, Any] = _NO_MEMO
        self._emit = Emitter("RateLimit", on_event)
        self._lanes: dict[Hashable, Lane] = {}
        self._limit = UNLIMITED if self.max_concurrency is None else self.max_concurrency

    # -- the hooks ------------------------------------------------------------------------

    # -- the hooks ------------------------------------------------------------------------

    def enter(self, call: Call, i: int) -> Step:
        request = call[REQUEST]
        if request is not None and self.key is None:
            # The lane of the last URL is remembered: yarl hands out one URL object per URL
            # string, so the same URL again finds its lane by one identity check (~2k
            # instructions less). A tuple, so that it is read and replaced in one step.
            url = request.url
            memo = self._memo
            lane = memo[1] if memo[0] is url else self._url_lane(url)
        else:
            lane = self._lane(self._key(call))
        call[i] = lane
        if not lane.waiting and lane.inflight < self._limit:
            # The slot is claimed right after the check, with no call between them: no other
            # thread's loop can take the same last slot in between (see the module docstring).
            lane.inflight += 1
            now = self._now
            now = now()
            bucket = lane.bucket
            if (
                lane.own
                and (elapsed := now - bucket.stamp) > 0.0
                and (rate := bucket.rate) >= bucket.base
            ):
                # TokenBucket.try_take written out for a bucket at its configured rate (the
                # method call would cost as much again); the method does the rest.
                tokens = bucket.tokens + elapsed * rate
                bucket.stamp = now
                if tokens > bucket.capacity:
                    tokens = bucket.capacity
                if tokens >= _ONE:
                    bucket.tokens = tokens - 1.0
                    if DEBUG_LOG.on or self._emit.hooks:
                        self._emit.emit_call("ratelimit.acquired", call)
                    return None
                bucket.tokens = tokens
            elif bucket.try_take(now):
                if DEBUG_LOG.on or self._emit.hooks:
                    self._emit.emit_call("ratelimit.acquired", call)
                return None
            lane.inflight -= 1
        return self._queue(lane, call)

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        lane: Lane = call[i]
        if lane.waited:  # a call of this lane waited for its token: this one? (rh.info)
            tell(lane, call, result)
        lane.inflight -= 1
        if self.adaptive:
            if isinstance(result, ClientResponse):
                status = result.status
                # What the headers property returns, without its cache lookup (~450
                # instructions, twice that on the property's first read).
                headers: Any = result._headers
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
        if lane.waiting:
            self._serve(lane)
        return None

    def _url_lane(self, url: Any) -> Lane:
        """The lane of a request's URL with the default key; remembered for the next one."""
        lane = self._lane((url.scheme, url.raw_host, url.port))
        self._memo = (url, lane)
        return lane

    def _lane(self, key: Hashable) -> Lane:
        """The lane of ``key``, made on its first use."""
        lane = self._lanes.get(key)
        if lane is None:
            if len(self._lanes) >= self.max_keys:
                self._memo = _NO_MEMO  # it may hold a lane that making this one evicts
            lane = self._new_lane(key)
        return lane

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

