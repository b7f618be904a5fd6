"""``Timeout``: a deadline for a call, body included.

Outside a ``Retry`` it bounds the whole call (every attempt and every backoff sleep); inside
it, each attempt. The deadline is visible to the layers inside it through
:func:`current_deadline`, so ``Retry`` never starts a sleep that would end past it and
``RateLimit`` never waits past it.

How it works: on the way in the layer records the call's deadline; if the deadline passes, a
timer cancels the task, and the layer turns that cancellation into :class:`DeadlineExceeded`
on the way out (``asyncio.timeout``'s technique: no extra task, no extra coroutine). When an
outer deadline comes first, nothing is recorded at all.

Arming an event-loop timer per call (``loop.call_at`` + ``cancel``) costs several
microseconds, more than the rest of a stack. Since one ``Timeout`` adds the same number of
seconds to a monotonic clock, its deadlines come in order: the layer keeps its live calls in a
FIFO and arms ONE timer, for the oldest live call. Calls that finish are dropped from the
front; the timer, when it fires, expires what is due and re-arms for the next live call. A
call costs a small object and two deque operations.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from contextvars import ContextVar, Token
from datetime import timedelta
from typing import Any

from resilient_http._clock import Clock, LoopClock, TimerHandle
from resilient_http._middleware import REQUEST, Call, Layer, Step
from resilient_http._validate import clock_or_default, duration, flag
from resilient_http.errors import DeadlineExceeded

__all__ = ["Timeout", "current_deadline"]

_DEADLINE: ContextVar[float | None] = ContextVar("resilient_http_deadline", default=None)


def current_deadline() -> float | None:
    """The earliest deadline set by the ``Timeout`` layers around the running code, as a time
    on the layers' clock (seconds), or ``None`` when no deadline applies."""
    return _DEADLINE.get()


class _Armed:
    """One live call under one ``Timeout``."""

    __slots__ = ("when", "token", "task", "done", "fired", "cancelling")

    def __init__(self, when: float, token: Token[float | None], task: asyncio.Task[Any]) -> None:
        self.when = when
        self.token = token
        self.task = task
        self.done = False
        self.fired = False
        self.cancelling = 0

    def fire(self) -> None:
        self.fired = True
        if sys.version_info >= (3, 11):
            self.cancelling = self.task.cancelling()
        self.task.cancel()


class Timeout(Layer):
    """Bound a call, or each attempt, to ``seconds``.

    Placed outside ``Retry`` it is a total deadline; inside it, a per-attempt timeout. By
    default it covers the whole exchange: the response body is read inside the deadline (the
    caller still uses ``read()``/``json()``/``text()`` as usual), so a dripping body times out
    like a slow server.

    Args:
        seconds: the limit, in seconds (``float``) or a ``timedelta``; must be > 0.
        stream: when true, only the time until the response *headers* arrive is bounded and the
            body is left for the caller to stream, unbounded by this layer (use aiohttp's
            ``ClientTimeout(sock_read=...)`` for that). Default ``False``.
        clock: the time source; default the event loop's clock. Tests pass a ``FakeClock``.

    Raises:
        DeadlineExceeded: when the limit passes. It is an ``aiohttp.ServerTimeoutError``, so
            also an ``aiohttp.ClientError`` and an ``asyncio.TimeoutError``.

    In decorator mode it bounds the whole decorated call.
    """

    __slots__ = ("seconds", "stream", "clock", "reads_body", "_now", "_live", "_timer", "_loop")

    def __init__(
        self,
        seconds: float | timedelta,
        *,
        stream: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.seconds: float = duration("seconds", seconds)
        self.stream = flag("stream", stream)
        self.clock: Clock = clock_or_default(clock)
        self.reads_body = not stream
        # The loop clock's now() is time.monotonic(): call it directly on the fast path.
        self._now = time.monotonic if isinstance(self.clock, LoopClock) else self.clock.now
        self._live: deque[_Armed] = deque()
        self._timer: TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def enter(self, call: Call, i: int) -> Step:
        when = self._now() + self.seconds
        outer = _DEADLINE.get()
        if outer is not None and outer <= when:
            return None  # an outer deadline fires first; nothing to do (state stays None)
        request = call[REQUEST]
        loop = request.loop if request is not None else asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Timeout must run inside an asyncio task")
        armed = _Armed(when, _DEADLINE.set(when), task)
        if loop is not self._loop:  # first use, or reused on a new event loop: start afresh
            self._restart(loop)
        self._live.append(armed)
        if self._timer is None:
            self._timer = self.clock.call_at(when, self._expire)
        call[i] = armed
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        armed: _Armed | None = call[i]
        if armed is None:
            return None
        call[i] = None
        armed.done = True
        live = self._live
        while live and live[0].done:
            live.popleft()
        _DEADLINE.reset(armed.token)
        if armed.fired and isinstance(error, asyncio.CancelledError):
            if sys.version_info >= (3, 11) and armed.task.uncancel() > armed.cancelling:
                return None  # the caller cancelled too: let the cancellation through
            raise DeadlineExceeded(
                f"no response within {self.seconds:g} s", timeout=self.seconds
            ) from error
        return None

    def _expire(self) -> None:
        """The timer fired: cancel every live call that is due, re-arm for the next one."""
        self._timer = None
        live = self._live
        now = self.clock.now()
        while live:
            head = live[0]
            if head.done:
                live.popleft()
            elif head.when <= now:
                live.popleft()
                head.fire()
            else:
                self._timer = self.clock.call_at(head.when, self._expire)
                break

    def _restart(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._live.clear()
        self._loop = loop

    def __repr__(self) -> str:
        extra = ", stream=True" if self.stream else ""
        return f"Timeout({self.seconds:g}{extra})"
