"""``RetryBudget(store=RedisStore(...))``: one retry budget for the whole fleet.

The server (``budget.lua``) holds the fleet's window: requests and retries per slot, and the
floor's token bucket, on its own clock. Deposits (one per request, the hot path) never wait
for it: the engine's inline deposit still adds one to ``_fresh``, and a background task sends
the count every :data:`FLUSH` seconds while requests come (it stops after an interval with
none). Refunds ride along. A withdrawal (a retry, which is about to sleep anyway) is one
round trip: the script adds this process's pending deposits, then takes the retry only if
the fleet's retries stay within ``ratio`` of the fleet's requests (or the floor has a token),
atomically, so two processes never spend the same unit.

The approximation: the fleet's request count a withdrawal sees misses each process's
deposits of at most the last ``FLUSH`` seconds (0.1 s) plus one round trip, so the retries
allowed may fall short of ``ratio`` times the true requests by ``ratio`` times that many
requests; they never exceed it (retries are counted exactly).

While the store is unavailable, ``on_error`` applies to withdrawals: ``"local"`` decides
from this process's own window (every deposit is also counted there), ``"open"`` allows
the retry, ``"closed"`` raises :class:`~resilient_http.StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from resilient_http._budget import RetryBudget
from resilient_http.errors import StoreUnavailable
from resilient_http.redis.store import RedisStore

__all__ = ["SharedRetryBudget", "FLUSH"]

FLUSH = 0.1
"""Seconds between two flushes of the deposits while requests come."""


class SharedRetryBudget(RetryBudget):
    """A :class:`~resilient_http.RetryBudget` counted by the whole fleet (made by
    ``RetryBudget(store=...)``; see the module docstring)."""

    __slots__ = ("store", "name", "_local", "_refunds", "_task", "_seen", "_fleet")

    shared = True

    def __init__(self, *args: Any, store: RedisStore, name: str = "retry", **kwargs: Any) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore or None, got {type(store).__name__}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        super().__init__(*args, **kwargs)
        self.store = store
        self.name = name
        self._local = RetryBudget(
            self.ratio, min_per_second=self.min_per_second, window=self.window, slots=self._n
        )
        self._refunds = 0
        self._task: asyncio.Task[None] | None = None
        self._seen = 0.0
        self._fleet = (0, 0)
        """(requests, retries) in the fleet's window at the last reply."""

    # -- deposits and refunds: counted here, flushed in the background -----------------------

    def deposit(self, now: float) -> None:
        self._fresh += 1
        self._seen = now
        self._flush_soon()

    def refund(self, now: float) -> None:
        self._refunds += 1
        self._local.refund(now)
        self._seen = now
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: counted, sent with the next flush or withdrawal
                return
            self._slot_end = math.inf  # the inline deposit just counts while the task runs
            self._task = loop.create_task(self._flusher())

    async def _flusher(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH)
                deposits, refunds = self._take(self._seen)
                if not deposits and not refunds:
                    return
                try:
                    await self._send("flush", deposits, refunds)
                except StoreUnavailable:  # the local window counts them
                    continue
        finally:
            self._task = None
            self._slot_end = -math.inf

    def _take(self, now: float) -> tuple[int, int]:
        """The deposits and refunds not sent yet (the deposits also go to the local window)."""
        deposits, self._fresh = self._fresh, 0
        refunds, self._refunds = self._refunds, 0
        if deposits:
            local = self._local
            local._sync(now)
            local._fresh += deposits
        return deposits, refunds

    async def _send(self, op: str, deposits: int, refunds: int) -> bool:
        store = self.store
        reply = await store.run(
            "budget",
            (store.key("budget", self.name),),
            (op, deposits, refunds, repr(self.ratio), repr(self.min_per_second),
             int(self.window * 1e6), self._n),
        )
        self._fleet = (int(reply[1]), int(reply[2]))
        return bool(int(reply[0]))

    # -- withdrawals: one round trip ---------------------------------------------------------

    async def awithdraw(self, now: float) -> bool:
        """Take one retry from the fleet's budget at ``now`` (one round trip, bounded by the
        store's ``socket_timeout``); ``False`` when it is spent. While the store is
        unavailable: the store's ``on_error`` (see the module docstring).

        Raises:
            StoreUnavailable: the store is unavailable and ``on_error="closed"``.
        """
        deposits, refunds = self._take(now)
        try:
            return await self._send("withdraw", deposits, refunds)
        except StoreUnavailable:
            if self.store.on_error == "closed":
                raise
            return self.store.on_error == "open" or self._local.withdraw(now)

    def withdraw(self, now: float) -> bool:
        """Decide from this process's own window (``Retry`` calls :meth:`awithdraw`)."""
        self._take(now)
        return self._local.withdraw(now)

    def available(self, now: float) -> int:
        """Retries the fleet's budget allowed at the last reply, by ``ratio`` (the floor not
        included), counting this process's deposits not sent yet."""
        requests, retries = self._fleet
        return max(0, math.floor(self.ratio * (requests + self._fresh) + 1e-9) - retries)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, store={self.store!r}, name={self.name!r})"
