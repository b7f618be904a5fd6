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
call costs a six-item list and two deque operations.

Event loops and threads: the FIFO and its timer belong to one event loop, so the layer keeps
one pair per loop (:class:`_Deadlines`) and remembers the last one used. One ``Timeout`` can
serve loops that run one after another (``asyncio.run`` again) and loops that run at the same
time in other threads: each loop's calls are timed by a timer on that loop, touched only by
that loop's thread. Only a call on another loop than the last one looks its pair up (under a
lock); the pairs of closed loops are forgotten then.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from resilient_http._clock import Clock, LoopClock, TimerHandle
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._middleware import REQUEST, TASK, Call, Layer, Step
from resilient_http._validate import clock_or_default, duration, flag
from resilient_http.errors import DeadlineExceeded

__all__ = ["Timeout", "current_deadline"]

_DEADLINE: ContextVar[float | None] = ContextVar("resilient_http_deadline", default=None)
# Bound once: saves a method lookup per use on the fast path (~100 instructions per call).
_get_deadline, _set_deadline, _reset_deadline = _DEADLINE.get, _DEADLINE.set, _DEADLINE.reset
_running_loop = asyncio.get_running_loop
if (REQUEST, TASK) != (0, 4):  # the fast path indexes the call with these literals
    raise ImportError("resilient_http.timeout: the engine's call layout changed")


def current_deadline() -> float | None:
    """The earliest deadline set by the ``Timeout`` layers around the running code, as a time
    on the layers' clock (seconds), or ``None`` when no deadline applies."""
    return _DEADLINE.get()


# A live call under one ``Timeout`` is a record
# ``[deadline, task, token, cancelling, fired, live]``:
# a list, not an object, because one is made per call on the fast path (a list display costs
# ~35 ns, a slotted object's ``__init__`` ~140 ns).
#   deadline    the call's deadline, on the layer's clock
#   task        the task to cancel when the deadline passes; None once the call has finished
#               (the timer and the FIFO skip it)
#   token       what ``_DEADLINE.set`` returned, for the reset on the way out
#   cancelling  the task's ``cancelling()`` count on the way in (3.11+; 0 on 3.10): taken on
#               the way in, as ``asyncio.timeout`` does, so that a caller's cancel landing in
#               the same loop iteration as the deadline, before it, stays a cancellation
#   fired       whether the timer cancelled the task
#   live        the FIFO of the call's event loop (see _Deadlines)
if sys.version_info >= (3, 11):
    # The method itself, called with the task: cheaper than ``task.cancelling()`` (~90
    # instructions); a task of another class (a pure-Python one) raises TypeError and is
    # asked the usual way.
    _cancelling: Callable[[asyncio.Task[Any]], int] = asyncio.Task.cancelling
else:  # no cancel counts before 3.11

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return 0

if sys.version_info < (3, 12):
    # Before 3.12 ``asyncio.current_task(loop)`` is a Python function around this very dict
    # lookup (the dict the C task steps update); calling ``get`` directly saves ~900 CPU
    # instructions per call on 3.11. These releases are frozen: the private name stays put.
    from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]

    _current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
    _current_task = _current_tasks.get
else:  # in C since 3.12
    _current_task = asyncio.current_task


_LOCK = threading.Lock()
"""Guards every Timeout's ``_loops`` (taken only by a call on another loop than the last)."""


class _Deadlines:
    """The live calls of one ``Timeout`` on one event loop, oldest first, and its one timer."""

    __slots__ = ("loop", "live", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.live: deque[list[Any]] = deque()
        self.timer: TimerHandle | None = None


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

    Pickling or copying it (``copy.copy``, ``copy.deepcopy``) gives a new layer with the same
    configuration and none of the state (see the README's "Pickling and copying").
    """

    __slots__ = ("_config", "seconds", "stream", "clock", "reads_body", "_now", "_here", "_loops")

    __reduce__ = fresh_reduce

    def __init__(
        self,
        seconds: float | timedelta,
        *,
        stream: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._config = config_of(locals())
        self.seconds: float = duration("seconds", seconds)
        self.stream = flag("stream", stream)
        self.clock: Clock = clock_or_default(clock)
        self.reads_body = not stream
        # The loop clock's now() is time.monotonic(): call it directly on the fast path.
        self._now = time.monotonic if isinstance(self.clock, LoopClock) else self.clock.now
        self._here = _Deadlines(None)  # the pair of the loop used last
        self._loops: dict[asyncio.AbstractEventLoop, _Deadlines] = {}

    def enter(self, call: Call, i: int) -> Step:
        when = self._now() + self.seconds
        outer = _get_deadline()
        if outer is not None and outer <= when:
            return None  # an outer deadline fires first; nothing to do (state stays None)
        request = call[0]  # REQUEST (literal indexes: no global lookup on the fast path)
        loop = request.loop if request is not None else _running_loop()
        task = call[4]  # TASK, looked up once per call, shared with the other layers
        if task is None:
            task = call[4] = _current_task(loop)
            if task is None:
                raise RuntimeError("Timeout must run inside an asyncio task")
        here = self._here
        if here.loop is not loop:  # first use, another thread's loop, or a new event loop
            here = self._deadlines(loop)
        try:
            cancelling = _cancelling(task)
        except TypeError:  # a task of another class than asyncio's own
            cancelling = task.cancelling()
        live = here.live
        call[i] = armed = [when, task, _set_deadline(when), cancelling, False, live]  # see above
        live.append(armed)
        if here.timer is None:
            here.timer = self.clock.call_at(when, self._expire, here)
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        armed: list[Any] | None = call[i]
        if armed is None:
            return None
        call[i] = None
        _reset_deadline(armed[2])
        live = armed[5]
        if live and live[0] is armed:  # the common case: the oldest live call finished
            live.popleft()
            while live and live[0][1] is None:  # and those that finished before it
                live.popleft()
            return None  # not fired: the timer pops what it cancels
        if not armed[4]:
            armed[1] = None  # finished out of order: the FIFO and the timer skip it
            return None
        if isinstance(error, asyncio.CancelledError):
            if sys.version_info >= (3, 11) and armed[1].uncancel() > armed[3]:
                return None  # the caller cancelled too: let the cancellation through
            raise DeadlineExceeded(
                f"no response within {self.seconds:g} s", timeout=self.seconds
            ) from error
        return None

    def _expire(self, here: _Deadlines) -> None:
        """The timer fired: cancel every live call that is due, re-arm for the next one."""
        here.timer = None
        live = here.live
        now = self.clock.now()
        while live:
            head = live[0]
            task = head[1]
            if task is None:
                live.popleft()
            elif head[0] <= now:
                live.popleft()
                head[4] = True
                task.cancel()
            else:
                here.timer = self.clock.call_at(head[0], self._expire, here)
                break

    def _deadlines(self, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        """The FIFO and timer of ``loop`` (made on its first call); forgets closed loops'."""
        with _LOCK:
            here = self._loops.get(loop)
            if here is None:
                for old in [old for old in self._loops if old.is_closed()]:
                    gone = self._loops.pop(old)
                    if gone.timer is not None:
                        gone.timer.cancel()
                here = self._loops[loop] = _Deadlines(loop)
            self._here = here
        return here

    @property
    def _live(self) -> deque[list[Any]]:
        """The live calls of the loop used last (for tests)."""
        return self._here.live

    def __repr__(self) -> str:
        extra = ", stream=True" if self.stream else ""
        return f"Timeout({self.seconds:g}{extra})"
