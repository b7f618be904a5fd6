"""The rate limiter's adaptive token bucket, and how a response's limits adapt it. Pure.

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

Why not just ``aiolimiter``. ``aiolimiter.AsyncLimiter`` is the reference we measure against
(its leaky-bucket arithmetic is the same as ours for a fixed rate, and its heap of waiters
woken one at a time is the same idea), but it cannot serve as this layer's engine: its
``acquire`` is a coroutine, so even a free token costs an ``await`` (the engine takes free
tokens synchronously inside ``enter``); it reads ``loop.time()`` only, so tests would have to
sleep instead of driving a ``FakeClock``; its rate is fixed (no pause, no lowering, no
recovery); it cannot say how long a wait *would* be without queueing, so it cannot refuse a
wait past ``max_wait`` or a deadline without taking a token; it has no priorities and no
per-key buckets. Hence this module; aiolimiter stays the baseline of
``benchmarks/ratelimit_overhead.py`` and ``benchmarks/ratelimit_accuracy.py``.
"""

from __future__ import annotations

from resilient_http._ratelimit_headers import Limits

__all__ = ["TokenBucket", "adapt", "EPS"]

EPS = 1e-6
"""Float slack: a bucket holding 0.999999 tokens has one (timers may fire a hair early)."""
_ONE = 1.0 - EPS


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
        if elapsed > 0.0:  # float to float: the interpreter's specialised comparison
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


def adapt(
    bucket: TokenBucket,
    limits: Limits,
    status: int,
    now: float,
    in_flight: int,
    max_pause: float,
) -> tuple[str, float]:
    """Apply what one response said to its key's bucket.

    Args:
        limits: the parsed headers (``Retry-After`` only parsed on 429/503).
        status: the response status.
        in_flight: other requests of the key still in flight (they will use some of the
            remaining quota first).
        max_pause: cap on any pause, seconds.

    Returns:
        ``(reason, pause)``: why the bucket changed (``""`` if it did not; else ``"policy"``,
        ``"remaining"``, ``"429"``, ``"exhausted"``, ``"retry-after"`` joined by ``+``) and
        the pause imposed in seconds (0 for none).

    The rules, in order:

    1. A declared policy (``q`` per ``w``) lowers the rate to ``q/w`` and holds it for ``w``;
       without one, ``remaining / reset`` does (the rate that spreads the remaining quota).
    2. A 429 without a declared policy halves the rate (once per hold); any 429 empties the
       bucket (the server had no token for us, so ours was an over-estimate).
    3. ``remaining`` caps the tokens, minus the requests still in flight; none remaining
       pauses until the reset, unless the declared rate refills sooner than that.
    4. A 429 or 503 with ``Retry-After`` pauses for it.
    """
    reasons: list[str] = []
    pause = 0.0
    declared = limits.rate
    remaining = limits.remaining
    reset = limits.reset
    if declared is not None:
        if bucket.limit_rate(declared, now, min(max_pause, limits.window or 1.0)):
            reasons.append("policy")
    elif (
        remaining is not None
        and reset is not None
        and reset > 0
        and remaining >= 1
        and bucket.limit_rate(remaining / reset, now, min(max_pause, reset))
    ):
        reasons.append("remaining")
    if status == 429:
        if declared is None and bucket.slow_down(0.5, now, 1.0 / bucket.rate):
            reasons.append("429")
        bucket.cap_tokens(0.0, now)
    if remaining is not None:
        if remaining >= 1:
            bucket.cap_tokens(remaining - in_flight, now)
        elif reset is not None and (declared is None or reset <= 1.0 / declared):
            delay = min(reset, max_pause)
            if bucket.pause(now + delay, now):
                pause = delay
                reasons.append("exhausted")
        else:
            bucket.cap_tokens(0.0, now)
    if (status == 429 or status == 503) and limits.retry_after is not None:
        delay = min(limits.retry_after, max_pause)
        if bucket.pause(now + delay, now):
            pause = max(pause, delay)
            reasons.append("retry-after")
    return "+".join(reasons), pause
