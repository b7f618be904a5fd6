"""The attempts of one hedged call (``Hedge``'s per-call state): start them, learn their
latencies, judge them as they finish, cancel and release the losers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse

from resilient_http._latency import LatencyRing
from resilient_http._middleware import Call, Inner, Short
from resilient_http.classify import TRANSIENT, classify
from resilient_http.events import DEBUG_LOG, Emitter

__all__ = ["Race"]


class Race:
    """The attempts of one hedged call."""

    __slots__ = ("events", "now", "ring", "running", "finished", "tried", "due", "failure", "won",
                 "_wake", "_loop")

    def __init__(self, events: Emitter, now: Callable[[], float], ring: LatencyRing) -> None:
        self.events = events
        self.now = now
        self.ring = ring
        self.running: dict[asyncio.Task[Any], tuple[int, float]] = {}
        """Attempts still running (or finished, not yet judged): their number and start."""
        self.finished: list[asyncio.Task[Any]] = []
        self.tried = 0
        self.due = False
        """Whether the delay before the next hedge has passed."""
        self.failure: asyncio.Task[Any] | None = None
        """The last attempt that failed, not yet released."""
        self.won = 0
        self._wake: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()

    def start(self, inner: Inner, now: float) -> None:
        self.tried += 1
        task = self._loop.create_task(self._attempt(inner, now))
        self.running[task] = (self.tried, now)
        task.add_done_callback(self._done)

    async def _attempt(self, inner: Inner, start: float) -> Any:
        result = await inner()
        if _good(result):
            self.ring.add(self.now() - start)
        return result

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.finished.append(task)
        self._poke()

    def fire(self) -> None:
        """The timer: the next hedge is due."""
        self.due = True
        self._poke()

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def next(self) -> None:
        """Wait until an attempt finishes or the next hedge is due."""
        if not self.finished and not self.due:
            self._wake = self._loop.create_future()
            try:
                await self._wake
            finally:
                self._wake = None

    def judge(self, task: asyncio.Task[Any]) -> bool:
        """Whether a finished attempt won; a failure is kept (the previous one released)."""
        number, _ = self.running.pop(task)
        if not task.cancelled() and task.exception() is None and _good(task.result()):
            self.won = number
            return True
        if self.failure is not None:
            _discard(self.failure)
        self.failure = task
        return False

    def win(self, call: Call, task: asyncio.Task[Any]) -> Any:
        events = self.events
        if self.tried > 1 and (events.hooks or DEBUG_LOG.on):
            events.emit_call("hedge.won", call, attempt=self.won, attempts=self.tried)
        return task.result()

    def give_up(self) -> Short:
        task, self.failure = self.failure, None
        assert task is not None
        error = task.exception()
        if error is not None:
            raise error
        return Short(task.result())

    def stop(self, call: Call) -> None:
        """Cancel what still runs, release what finished unused (the call's end, any way)."""
        for task in self.finished:
            self.running.pop(task, None)
            _discard(task)
        self.finished.clear()
        if self.failure is not None:
            _discard(self.failure)
            self.failure = None
        if not self.running:
            return
        now = self.now()
        for task, (_, start) in self.running.items():
            task.remove_done_callback(self._done)
            task.add_done_callback(_discard)
            task.cancel()
            self.ring.add(now - start)  # at least this slow: what the tail is made of
        events = self.events
        if events.hooks or DEBUG_LOG.on:
            events.emit_call("hedge.cancelled", call, attempts=len(self.running))
        self.running.clear()


def _good(result: Any) -> bool:
    """An answer (not a transient failure): it wins the race."""
    return not isinstance(result, ClientResponse) or classify(result).outcome is not TRANSIENT


def _discard(task: asyncio.Task[Any]) -> None:
    """Drop an attempt's outcome: retrieve its error, release its response."""
    if task.cancelled():
        return
    if task.exception() is None:
        result = task.result()
        if isinstance(result, ClientResponse):
            result.release()
