"""``RetryBudget``: a cap on retries across all the requests of a layer (tower/Finagle style).

Every logical request *deposits* one unit; every retry *withdraws* one. A retry is allowed
while the retries of the last ``window`` seconds stay within ``ratio`` times the requests of
the same window, or, beyond that, while a small floor of ``min_per_second`` retries per
second (a token bucket holding one second's worth) has a token left — so a quiet client can
still retry, and a busy one in an outage adds at most ``ratio`` to its load instead of
multiplying it by ``attempts``.

A retry that *succeeds* is refunded (:meth:`RetryBudget.refund`): the budget charges the
retries that add load without result. In an outage nothing is refunded and the cap holds;
against a server that is up but flaky (say 20 % of 503s, which needs ~0.28 retries per
request), retries mostly succeed and the budget does not starve them.

Pure logic: time is a parameter (``now``, seconds on any monotonic clock), nothing awaits.

Deposits are the hot path (one per request, while withdrawals happen only on failures): a
deposit into the current slot only bumps a counter (``_fresh``), which the window folds into
its slot when it next slides or is read. ``Retry`` does that bump inline (see
:meth:`RetryBudget.deposit`).

Threads: everything but that bump runs under one lock (:data:`_LOCK`), so one budget shared by
event loops in several threads never allows more retries than with one loop. The bump takes
no lock; folding it in subtracts what was read (``_fresh -= n``), so a bump made meanwhile by
another thread is kept, not lost.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._validate import duration, number, positive_int, show

if TYPE_CHECKING:
    from resilient_http.redis.store import RedisStore

__all__ = ["RetryBudget"]

_MAX_SLOTS = 10_000
"""The window's finest resolution (each slot costs two list entries)."""

_LOCK = threading.Lock()
"""Serializes every budget's window (never taken by the per-request bump of ``_fresh``)."""


class RetryBudget:
    """Retries allowed across all requests sharing this budget.

    Args:
        ratio: retries allowed per logical request over the window (0.2: retries may add 20 %
            to the load); a number in [0, 100]. Default 0.2.
        min_per_second: retries allowed per second regardless of traffic (the floor), >= 0;
            at most one second's worth is saved up. Default 10.
        window: the sliding window over which requests and retries are counted, in seconds
            (``float``) or a ``timedelta``. Default 10.
        slots: the window's resolution: it slides in ``window / slots`` steps (1 to
            10,000). Default 10.
        store: ``None`` (default): the budget counts this process's requests and retries. A
            :class:`~resilient_http.RedisStore`: it counts the whole fleet's (every process
            using the same store and ``name``); deposits are sent in the background every
            0.1 s, a retry takes one round trip (see :mod:`resilient_http.redis.budget`).
        name: with a ``store``, which shared budget this is. Default ``"retry"``.

    One budget belongs to one ``Retry`` layer by default; pass the same object to several
    layers to share it. Methods take the current time from the caller's clock.
    """

    __slots__ = (
        "_config",
        "ratio",
        "min_per_second",
        "window",
        "_n",
        "_slot_len",
        "_dep",
        "_fresh",
        "_wd",
        "_dep_total",
        "_wd_total",
        "_idx",
        "_slot_end",
        "_tokens",
        "_tokens_at",
    )

    __reduce__ = fresh_reduce

    shared: ClassVar[bool] = False
    """Whether withdrawals must be awaited (:meth:`awithdraw`): a budget on a store."""

    def __new__(cls, *args: Any, store: Any = None, **kwargs: Any) -> RetryBudget:
        if store is not None and cls is RetryBudget:
            from resilient_http.redis.budget import SharedRetryBudget

            cls = SharedRetryBudget
        return super().__new__(cls)

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_per_second: float = 10.0,
        window: float | timedelta = 10.0,
        slots: int = 10,
        store: RedisStore | None = None,
        name: str | None = None,
    ) -> None:
        self._config = config_of(locals())
        if store is not None or name is not None:
            raise TypeError(
                f"store= and name= are only supported by RetryBudget itself, not by "
                f"{type(self).__name__} (name needs a store), got {show(store)}, {show(name)}"
            )
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool):
            raise TypeError(f"ratio must be a number, got {type(ratio).__name__} {show(ratio)}")
        if not 0 <= ratio <= 100:  # also rejects NaN
            raise ValueError(
                f"ratio must be between 0 and 100 retries per request, got {show(ratio)}"
            )
        self.ratio = float(ratio)
        self.min_per_second = number("min_per_second", min_per_second)
        self.window: float = duration("window", window)
        self._n = positive_int("slots", slots, maximum=_MAX_SLOTS)
        self._slot_len = self.window / self._n
        self._dep = [0] * self._n
        self._fresh = 0  # deposits of the current slot not yet folded into _dep/_dep_total
        self._wd = [0] * self._n
        self._dep_total = 0
        self._wd_total = 0
        self._idx = 0
        self._slot_end = -math.inf
        self._tokens = self.min_per_second
        self._tokens_at = -math.inf

    def _sync(self, now: float) -> None:
        """Bring the window up to ``now``, every deposit counted in its slot."""
        fresh = self._fresh
        if fresh:
            self._dep[self._idx] += fresh
            self._dep_total += fresh
            self._fresh -= fresh  # not = 0: a bump made meanwhile by another thread stays
        if now >= self._slot_end:
            self._slide(now)

    def _slide(self, now: float) -> None:
        if now - self._slot_end >= self.window:  # idle for a whole window (or first use)
            self._dep = [0] * self._n
            self._wd = [0] * self._n
            self._dep_total = self._wd_total = 0
            self._idx = 0
            self._slot_end = now + self._slot_len
            return
        while now >= self._slot_end:
            self._idx = idx = (self._idx + 1) % self._n
            self._dep_total -= self._dep[idx]
            self._wd_total -= self._wd[idx]
            self._dep[idx] = self._wd[idx] = 0
            self._slot_end += self._slot_len

    def deposit(self, now: float) -> None:
        """Record one logical request (not a retry) at time ``now``.

        The same as ``if now < budget._slot_end: budget._fresh += 1`` and this call
        otherwise, which is how ``Retry`` deposits (a method call costs as much as the rest)."""
        if now >= self._slot_end:
            with _LOCK:
                self._sync(now)
        self._fresh += 1

    def withdraw(self, now: float) -> bool:
        """Take one retry at time ``now``; ``False`` (nothing taken) when the budget is spent."""
        with _LOCK:
            return self._withdraw(now)

    def _withdraw(self, now: float) -> bool:
        self._sync(now)
        if self._wd_total + 1 <= self.ratio * self._dep_total + 1e-9:
            self._wd[self._idx] += 1
            self._wd_total += 1
            return True
        if self.min_per_second > 0:
            elapsed = now - self._tokens_at
            self._tokens_at = now
            if elapsed > 0:
                self._tokens = min(
                    self.min_per_second, self._tokens + elapsed * self.min_per_second
                )
            if self._tokens >= 1:
                self._tokens -= 1
                return True
        return False

    async def awithdraw(self, now: float) -> bool:
        """:meth:`withdraw`, awaitable: what ``Retry`` calls on a budget with a ``store``."""
        return self.withdraw(now)

    def refund(self, now: float) -> None:
        """Give back one retry that succeeded at time ``now`` (never below zero in the
        window)."""
        with _LOCK:
            self._sync(now)
            if self._wd_total > 0:
                self._wd[self._idx] -= 1
                self._wd_total -= 1

    def available(self, now: float) -> int:
        """How many retries :meth:`withdraw` would allow right now (for metrics and tests)."""
        with _LOCK:
            self._sync(now)
            return self._available(now)

    def _available(self, now: float) -> int:
        by_ratio = max(0, math.floor(self.ratio * self._dep_total + 1e-9) - self._wd_total)
        tokens = self._tokens
        if self.min_per_second > 0 and now > self._tokens_at:
            tokens = min(
                self.min_per_second, tokens + (now - self._tokens_at) * self.min_per_second
            )
        return by_ratio + math.floor(tokens)

    def __repr__(self) -> str:
        return (
            f"RetryBudget({self.ratio:g}, min_per_second={self.min_per_second:g}, "
            f"window={self.window:g})"
        )
