"""Pure pieces of the rate limiter: the adaptive token bucket and the priority FIFO of waiters.

Nothing here reads a clock or touches the event loop: time comes in as ``now`` (seconds on
the layer's clock), so every formula is tested without sleeping.

Token bucket
    ``tokens`` accrue at ``rate`` per second up to ``capacity``; a request takes one. A pause
    (``Retry-After``) is a debt: ``tokens`` goes negative so that the next token is ready
    exactly when the pause ends, which needs no extra state and no extra check on the fast
    path. When the rate is lowered the capacity shrinks with it (``burst * rate / base``, at
    least 1), so a bucket slowed to the server's 10 req/s cannot fire its configured 100-token
    burst after an idle moment.

Adaptation (AIMD)
    The rate only goes *down* from what a response says (the declared policy, remaining
    quota, a 429 halving it); it goes back *up* additively, by ``base / recovery`` per second,
    starting once the current hold (a pause, or the window the server's headers spoke for)
    has passed. Recovery is folded into the refill, so it costs nothing while the bucket runs
    at its configured rate.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["TokenBucket", "WaitQueue", "URGENT", "NORMAL", "BACKGROUND", "MAX_BYPASS"]

EPS = 1e-6
"""Float slack: a bucket holding 0.999999 tokens has one (timers may fire a hair early)."""
_ONE = 1.0 - EPS

URGENT, NORMAL, BACKGROUND = 0, 1, 2

MAX_BYPASS = 4
"""A priority class that has waiters is passed over at most this many times in a row."""


class TokenBucket:
    """One key's bucket state: tokens, current rate, capacity, hold time.

    Args:
        rate: the configured rate, tokens per second (> 0).
        burst: the configured capacity, tokens (>= 1).
        now: the creation time; the bucket starts full.
        recovery: seconds to climb from zero back to ``rate`` (additive increase of
            ``rate / recovery`` per second).
        min_rate: the rate is never lowered below this (tokens per second). Default: a
            millionth of ``rate``.
    """

    __slots__ = (
        "base",
        "burst",
        "rate",
        "capacity",
        "tokens",
        "stamp",
        "hold_until",
        "step",
        "min_rate",
    )

    def __init__(
        self,
        rate: float,
        burst: float,
        now: float,
        recovery: float,
        min_rate: float | None = None,
    ) -> None:
        self.base = rate
        self.min_rate = min(rate, rate * 1e-6 if min_rate is None else min_rate)
        self.burst = burst
        self.rate = rate
        self.capacity = burst
        self.tokens = burst
        self.stamp = now
        self.hold_until = -1e300
        self.step = rate / recovery

    # -- taking ---------------------------------------------------------------------------

    def refill(self, now: float) -> None:
        """Accrue the tokens (and the recovered rate) earned since the last call."""
        elapsed = now - self.stamp
        if elapsed > 0:
            rate = self.rate
            if rate < self.base:
                tokens = self.tokens + self._recover(now)
            else:
                tokens = self.tokens + elapsed * rate
            self.stamp = now
            cap = self.capacity
            self.tokens = tokens if tokens < cap else cap

    def try_take(self, now: float) -> bool:
        """Take one token if one is available at ``now`` (the fast path: keep it lean)."""
        tokens = self.tokens
        elapsed = now - self.stamp
        if elapsed > 0:
            rate = self.rate
            if rate < self.base:
                tokens += self._recover(now)
            else:
                tokens += elapsed * rate
            self.stamp = now
            if tokens > self.capacity:
                tokens = self.capacity
        if tokens >= _ONE:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def wait_for(self, n: float, now: float) -> float:
        """Seconds from ``now`` until ``n`` more tokens will have been available (taken one by
        one as they come), at the current rate; 0 if they are there now."""
        self.refill(now)
        missing = n - self.tokens
        if missing <= EPS:
            return 0.0
        return missing / self.rate

    def give_back(self, now: float) -> None:
        """Return a token taken for a request that was never sent."""
        self.refill(now)
        self.tokens = min(self.capacity, self.tokens + 1.0)

    def is_idle(self, now: float) -> bool:
        """Whether the bucket is indistinguishable from a new one (full, at its base rate)."""
        self.refill(now)
        return self.rate >= self.base and self.tokens >= self.capacity and now >= self.hold_until

    # -- adapting -------------------------------------------------------------------------

    def _recover(self, now: float) -> float:
        """Raise the rate additively for the time since the hold ended; return the tokens
        accrued since ``stamp`` (the integral of the rate over that time)."""
        stamp = self.stamp
        rate = self.rate
        start = stamp if stamp > self.hold_until else self.hold_until
        if now <= start:
            return (now - stamp) * rate
        accrued = (start - stamp) * rate
        step = self.step
        full = start + (self.base - rate) / step  # when the rate is back to base
        if now < full:
            d = now - start
            new = rate + d * step
            accrued += d * (rate + new) / 2.0
        else:
            d = full - start
            new = self.base
            accrued += d * (rate + new) / 2.0 + (now - full) * new
        self.rate = new
        self.capacity = max(1.0, self.burst * new / self.base)
        return accrued

    def _set_rate(self, rate: float) -> None:
        self.rate = min(self.base, max(rate, self.min_rate))
        self.capacity = max(1.0, self.burst * self.rate / self.base)
        if self.tokens > self.capacity:
            self.tokens = self.capacity

    def hold(self, until: float) -> None:
        """Suspend recovery until ``until``."""
        if until > self.hold_until:
            self.hold_until = until

    def pause(self, until: float, now: float) -> bool:
        """No token before ``until`` (one is ready then). Returns whether this extended the
        pause already in force."""
        self.refill(now)
        debt = 1.0 - (until - now) * self.rate
        self.hold(until)
        if debt < self.tokens - EPS:
            self.tokens = debt
            return True
        return False

    def limit_rate(self, rate: float, now: float, hold: float) -> bool:
        """Lower the rate to ``rate`` (never above the configured one) and hold it for
        ``hold`` seconds. A ``rate`` at or above the current one only refreshes the hold
        while it matches; returns whether the rate changed."""
        self.refill(now)
        current = self.rate
        if rate < current * (1.0 - 1e-6):
            self._set_rate(rate)
            self.hold(now + hold)
            return True
        if rate <= current * (1.0 + 1e-6):
            self.hold(now + hold)
        return False

    def slow_down(self, factor: float, now: float, hold: float) -> bool:
        """Multiplicative decrease, at most once per hold. Returns whether it happened."""
        self.refill(now)
        if now < self.hold_until:
            return False
        self._set_rate(self.rate * factor)
        self.hold(now + hold)
        return True

    def cap_tokens(self, n: float, now: float) -> None:
        """At most ``n`` (>= 0) tokens left now (a server said how many requests remain)."""
        self.refill(now)
        n = max(0.0, n)
        if self.tokens > n:
            self.tokens = n

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self.rate:g}/s of {self.base:g}, tokens={self.tokens:.3g}"
            f"/{self.capacity:.3g})"
        )


class WaitQueue:
    """Waiters of one key: FIFO within a priority class, urgent before normal before
    background, and no class passed over more than :data:`MAX_BYPASS` times in a row.

    The rule: each pick serves the highest class with waiters, unless a lower class with
    waiters has already been passed over ``MAX_BYPASS`` times in a row; then the highest such
    starved class is served (and its count reset). So while urgent work keeps tokens scarce,
    background work still gets at least one token in ``MAX_BYPASS + 2`` (one in five with two
    classes waiting).

    Entries are any objects with ``done()`` (asyncio futures): an entry that is done (cancelled,
    expired) is skipped lazily; :meth:`discard` keeps the live counts right.
    """

    __slots__ = ("queues", "live", "bypassed")

    def __init__(self) -> None:
        self.queues: tuple[deque[Any], deque[Any], deque[Any]] = (deque(), deque(), deque())
        self.live = [0, 0, 0]
        self.bypassed = [0, 0, 0]

    def __len__(self) -> int:
        live = self.live
        return live[0] + live[1] + live[2]

    def push(self, item: Any, priority: int) -> None:
        self.queues[priority].append(item)
        self.live[priority] += 1

    def ahead(self, priority: int) -> int:
        """Live waiters a newcomer of ``priority`` would wait behind (bypasses aside)."""
        return sum(self.live[: priority + 1])

    def discard(self, priority: int) -> None:
        """One entry of ``priority`` went away (done); it is dropped lazily."""
        self.live[priority] -= 1
        q = self.queues[priority]
        if len(q) > 64 and len(q) > 4 * self.live[priority]:
            keep = [x for x in q if not x.done()]
            q.clear()
            q.extend(keep)

    def pick(self) -> int:
        """The class whose head is served next (the queue must not be empty)."""
        live = self.live
        bypassed = self.bypassed
        top = 0 if live[0] else (1 if live[1] else 2)
        for c in range(top + 1, 3):
            if live[c] and bypassed[c] >= MAX_BYPASS:
                return c
        return top

    def pop(self) -> Any:
        """Remove and return the next live entry, by the rule above."""
        c = self.pick()
        live = self.live
        bypassed = self.bypassed
        bypassed[c] = 0
        for lower in range(c + 1, 3):
            if live[lower]:
                bypassed[lower] += 1
        q = self.queues[c]
        item = q.popleft()
        while item.done():
            item = q.popleft()
        live[c] -= 1
        if not live[c]:
            q.clear()  # drop dead entries left behind
        return item
