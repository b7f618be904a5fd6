"""A clock that tests drive by hand: no real sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

__all__ = ["FakeClock"]


class _FakeTimer:
    __slots__ = ("args", "callback", "cancelled", "clock", "seq", "when")

    def __init__(
        self,
        when: float,
        seq: int,
        callback: Callable[..., Any],
        args: tuple[Any, ...],
        clock: FakeClock,
    ) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.clock: FakeClock | None = clock

    def __lt__(self, other: _FakeTimer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        # Drop the references at once; the heap entry goes at the next compaction.
        self.callback, self.args = _noop, ()
        clock, self.clock = self.clock, None
        if clock is not None:
            clock._timer_cancelled()


class FakeClock:
    """A :class:`~resilient_http.Clock` whose time moves only when the test says so.

    Pass it to a layer (``Timeout(1, clock=clock)``) and to :class:`MockServer`, then
    ``await clock.advance(seconds)``: timers and sleepers that fall due fire in time order,
    and the tasks they wake get to run before ``advance`` returns.

    Args:
        start: the initial time, in seconds. Default ``0.0``.
        autojump: when true, every :meth:`sleep` moves the clock forward to its own end
            at once (after letting other tasks run), so code that only sleeps needs no
            manual ``advance``. Concurrent sleepers then see time jump by the longest of
            them, not the sum. Default ``False``.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = False) -> None:
        if (
            not isinstance(start, (int, float))
            or isinstance(start, bool)
            or not math.isfinite(start)
        ):
            raise TypeError(f"start must be a finite number of seconds, got {start!r}")
        self._now = float(start)
        self._timers: list[_FakeTimer] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self.autojump = autojump
        self.sleeps: list[float] = []
        """Every duration passed to :meth:`sleep`, in order (for assertions on backoff)."""

    def now(self) -> float:
        """The fake time, in seconds."""
        return self._now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> _FakeTimer:
        """Schedule ``callback(*args)`` for when the fake time reaches ``when``."""
        timer = _FakeTimer(when, next(self._seq), callback, args, self)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        """Suspend until the fake time has moved ``seconds`` forward.

        ``seconds <= 0`` only yields to the event loop once, like ``asyncio.sleep(0)``.
        """
        self.sleeps.append(seconds)
        if not seconds > 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        timer = self.call_at(self._now + seconds, _wake, fut)
        try:
            if self.autojump:
                await asyncio.sleep(0)
                if not fut.done():
                    self._run_due(timer.when)
            await fut
        finally:
            timer.cancel()

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in order.

        Lets woken tasks run after each timer, so a task that sleeps again within the window
        is woken again within the same call.
        """
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        target = self._now + seconds
        await _settle()
        while self._timers and self._timers[0].when <= target:
            self._run_due(self._timers[0].when)
            await _settle()
        self._now = max(self._now, target)
        await _settle()

    def pending(self) -> int:
        """How many timers and sleepers are waiting (cancelled ones excluded)."""
        return len(self._timers) - self._cancelled

    def _timer_cancelled(self) -> None:
        self._cancelled += 1
        if self._cancelled > 16 and self._cancelled * 2 > len(self._timers):
            self._timers = [t for t in self._timers if not t.cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def _run_due(self, until: float) -> None:
        self._now = max(self._now, until)
        while self._timers and self._timers[0].when <= self._now:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                self._cancelled -= 1
            else:
                timer.clock = None  # fired: a late cancel() must not count it
                timer.callback(*timer.args)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, pending={self.pending()})"


def _noop(*args: Any) -> None:
    pass


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
