"""The attempts of one hedged call (``Hedge``'s per-call state): start them, learn their
latencies, judge them as they finish, cancel and release the losers."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from aiohttp import ClientResponse

from resilient_http._budget import RetryBudget
from resilient_http._clock import TimerHandle
from resilient_http._latency import LatencyRing
from resilient_http._middleware import Call, Inner, Short
from resilient_http.classify import TRANSIENT, classify
from resilient_http.events import DEBUG_LOG

__all__ = ["INLINE", "Race"]

INLINE = sys.version_info >= (3, 11)
"""Whether the first attempt runs in the call's own task (needs ``Task.uncancel``)."""


class Race:
    """The attempts of one hedged call.

    The first attempt runs in the call's own task (:meth:`first`); hedges run in tasks of
    their own, started by a timer. A hedge that wins while the first attempt is still
    running cancels the call's task (and takes that cancellation back, see :meth:`first`).
    Each hedge task reports its own outcome and never ends with an exception, so a loser's
    error is never left unretrieved; a loser that finishes after the race is over releases
    its own response. Without ``Task.uncancel`` (Python 3.10) the first attempt runs in a
    task too.
    """

    __slots__ = ("layer", "inner", "call", "budget", "delay", "start_time", "ring", "running",
                 "finished", "tried", "failure", "over", "timer", "owner", "inline",
                 "interrupted", "_wake", "_loop")

    def __init__(self, layer: Any, inner: Inner, budget: RetryBudget | None, delay: float,
                 start: float, ring: LatencyRing) -> None:
        self.layer = layer
        self.inner = inner
        self.call: Call = inner.call
        self.budget = budget
        self.delay = delay
        self.start_time = start
        self.ring = ring
        self.running: dict[int, tuple[asyncio.Task[None], float]] = {}
        """Hedge tasks still running, by number: the task and its start."""
        self.finished: list[tuple[int, Any, BaseException | None]] = []
        """Attempts finished, not judged yet: number, result, error."""
        self.tried = 0
        self.failure: tuple[Any, BaseException | None] | None = None
        """The last failure (result, error), not yet released."""
        self.over = False
        self.timer: TimerHandle | None = None
        self.owner: asyncio.Task[Any] | None = None
        self.inline = False
        """Whether the call's task is running the first attempt (a winner interrupts it)."""
        self.interrupted = False
        self._wake: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()

    # -- the first attempt, inline ----------------------------------------------------------

    async def first(self) -> Short | None:
        """Run the first attempt in the call's task; its outcome if it won, else ``None``."""
        owner: Any = asyncio.current_task()  # cancelling()/uncancel(): 3.11+, see INLINE
        self.owner = owner
        self.tried = 1
        self.arm()
        base = owner.cancelling()
        start = self.start_time
        error: BaseException | None = None
        self.inline = True
        try:
            result = await self.inner()
        except asyncio.CancelledError:
            if not self.interrupted or owner.uncancel() > base:
                raise  # not (only) ours: the call itself is cancelled
            self.ring.add(self.layer._now() - start)
            return None  # a hedge won: it waits in self.finished
        except Exception as exc:
            result = None
            error = exc
        finally:
            self.inline = False
        if self.interrupted:  # cancelled, and something inside swallowed it: take it back
            owner.uncancel()
            _release(result)
            return None
        if error is None and _good(result):
            self.ring.add(self.layer._now() - start)
            return self._won(1, result)
        self.finished.append((1, result, error))  # after the hedges that failed before it
        return None

    # -- hedges -------------------------------------------------------------------------------

    def arm(self) -> None:
        """Arm the timer of the next hedge, if one is left."""
        layer = self.layer
        if self.tried <= layer.max_hedges:
            when = self.start_time + self.tried * self.delay
            self.timer = layer.clock.call_at(when, self._fire)

    def _fire(self) -> None:
        """The timer: start the next hedge, budget permitting."""
        self.timer = None
        if self.over:
            return
        layer = self.layer
        now = layer._now()
        if self.budget is not None and not self.budget.withdraw(now):
            layer._events.emit_call("hedge.budget_exhausted", self.call, logging.INFO)
            return  # no more hedges for this call
        if layer._events.hooks or DEBUG_LOG.on:
            layer._events.emit_call(
                "hedge.started", self.call, attempt=self.tried + 1, after=now - self.start_time
            )
        self.start(now)
        self.arm()

    def start(self, now: float) -> None:
        self.tried += 1
        number = self.tried
        task = self._loop.create_task(self._attempt(number, now))
        self.running[number] = (task, now)

    async def _attempt(self, number: int, start: float) -> None:
        error: BaseException | None = None
        try:
            result = await self.inner()
        except Exception as exc:  # CancelledError & co. end the task as they are
            result = None
            error = exc
        else:
            if _good(result):
                self.ring.add(self.layer._now() - start)
        if self.over:
            _release(result)
            return
        del self.running[number]
        self.finished.append((number, result, error))
        if self.inline:
            if error is None and _good(result) and not self.interrupted:
                self.interrupted = True
                assert self.owner is not None
                self.owner.cancel()  # the first attempt lost: the call goes on with this one
        else:
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    async def next(self) -> None:
        """Wait until an attempt finishes."""
        self._wake = self._loop.create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    # -- the outcome --------------------------------------------------------------------------

    def judge(self) -> Short | None:
        """The first finished attempt's outcome if it won (``None`` otherwise: the failure is
        kept, the previous one released)."""
        number, result, error = self.finished.pop(0)
        if error is None and _good(result):
            return self._won(number, result)
        if self.failure is not None:
            _release(self.failure[0])
        self.failure = (result, error)
        return None

    def _won(self, number: int, result: Any) -> Short:
        events = self.layer._events
        if self.tried > 1 and (events.hooks or DEBUG_LOG.on):
            events.emit_call("hedge.won", self.call, attempt=number, attempts=self.tried)
        return Short(result)

    def give_up(self) -> Short:
        """Every attempt failed: the last failure is the outcome."""
        failure, self.failure = self.failure, None
        assert failure is not None
        result, error = failure
        if error is not None:
            try:
                raise error
            finally:  # no frame <-> traceback cycle left behind
                del error, failure
        return Short(result)

    def stop(self) -> None:
        """Cancel what still runs, release what finished unused (the call's end, any way)."""
        self.over = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for _, result, _ in self.finished:
            _release(result)
        self.finished.clear()
        if self.failure is not None:
            _release(self.failure[0])
            self.failure = None
        cancelled = len(self.running) + self.interrupted
        if not cancelled:
            return
        now = self.layer._now()
        for task, start in self.running.values():
            task.cancel()
            self.ring.add(now - start)  # at least this slow: what the tail is made of
        self.running.clear()
        events = self.layer._events
        if events.hooks or DEBUG_LOG.on:
            events.emit_call("hedge.cancelled", self.call, attempts=cancelled)


def _good(result: Any) -> bool:
    """An answer (not a transient failure): it wins the race."""
    return not isinstance(result, ClientResponse) or classify(result).outcome is not TRANSIENT


def _release(result: Any) -> None:
    if isinstance(result, ClientResponse):
        result.release()
