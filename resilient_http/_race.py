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
    """The attempts of one hedged call.

    Each attempt runs in a task that reports its own outcome (no done-callback hop) and never
    ends with an exception, so a loser's error is never left unretrieved; a loser that
    finishes after the race is over releases its own response.
    """

    __slots__ = ("events", "now", "ring", "running", "finished", "tried", "due", "failure",
                 "over", "_wake", "_loop")

    def __init__(self, events: Emitter, now: Callable[[], float], ring: LatencyRing) -> None:
        self.events = events
        self.now = now
        self.ring = ring
        self.running: dict[int, tuple[asyncio.Task[None], float]] = {}
        """Attempts still running, by number: their task and start."""
        self.finished: list[tuple[int, Any, BaseException | None]] = []
        """Attempts finished, not judged yet: number, result, error."""
        self.tried = 0
        self.due = False
        """Whether the delay before the next hedge has passed."""
        self.failure: tuple[Any, BaseException | None] | None = None
        """The last failure (result, error), not yet released."""
        self.over = False
        self._wake: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()

    def start(self, inner: Inner, now: float) -> None:
        self.tried += 1
        number = self.tried
        self.running[number] = (self._loop.create_task(self._attempt(inner, number, now)), now)

    async def _attempt(self, inner: Inner, number: int, start: float) -> None:
        error: BaseException | None = None
        try:
            result = await inner()
        except Exception as exc:  # CancelledError & co. end the task as they are
            result = None
            error = exc
        else:
            if _good(result):
                self.ring.add(self.now() - start)
        if self.over:
            _release(result)
            return
        del self.running[number]
        self.finished.append((number, result, error))
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

    def judge(self, call: Call) -> Short | None:
        """The first finished attempt's outcome if it won (``None`` otherwise: the failure is
        kept, the previous one released)."""
        number, result, error = self.finished.pop(0)
        if error is None and _good(result):
            events = self.events
            if self.tried > 1 and (events.hooks or DEBUG_LOG.on):
                events.emit_call("hedge.won", call, attempt=number, attempts=self.tried)
            return Short(result)
        if self.failure is not None:
            _release(self.failure[0])
        self.failure = (result, error)
        return None

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

    def stop(self, call: Call) -> None:
        """Cancel what still runs, release what finished unused (the call's end, any way)."""
        self.over = True
        for _, result, _ in self.finished:
            _release(result)
        self.finished.clear()
        if self.failure is not None:
            _release(self.failure[0])
            self.failure = None
        if not self.running:
            return
        now = self.now()
        for task, start in self.running.values():
            task.cancel()
            self.ring.add(now - start)  # at least this slow: what the tail is made of
        events = self.events
        if events.hooks or DEBUG_LOG.on:
            events.emit_call("hedge.cancelled", call, attempts=len(self.running))
        self.running.clear()


def _good(result: Any) -> bool:
    """An answer (not a transient failure): it wins the race."""
    return not isinstance(result, ClientResponse) or classify(result).outcome is not TRANSIENT


def _release(result: Any) -> None:
    if isinstance(result, ClientResponse):
        result.release()
