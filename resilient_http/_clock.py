"""The clock every layer reads.

Layers never call ``time.monotonic`` or ``asyncio.sleep`` directly: they read time, sleep and
arm timers through a :class:`Clock`, so tests can drive time with
:class:`resilient_http.testing.FakeClock` instead of sleeping. The default is
:data:`LOOP_CLOCK`, the running event loop's own clock (``loop.time()``, the same clock
aiohttp's own timeouts use).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Clock", "LoopClock", "LOOP_CLOCK", "TimerHandle"]


class TimerHandle(Protocol):
    """What :meth:`Clock.call_at` returns: something that can be cancelled."""

    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """Time source for the layers. All values are seconds (``float``)."""

    def now(self) -> float:
        """Current time in seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` once ``now() >= when``."""
        ...


class LoopClock:
    """The event loop's clock: ``time.monotonic()``, ``asyncio.sleep``, ``loop.call_at``.

    ``now()`` reads ``time.monotonic()`` directly: it is what asyncio's loops return from
    ``loop.time()`` (uvloop's differs by at most its millisecond tick), and it is several
    times cheaper than looking the running loop up on every request.
    """

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback, *args)

    def __repr__(self) -> str:
        return "LoopClock()"


LOOP_CLOCK: Clock = LoopClock()
"""The default clock of every layer."""
