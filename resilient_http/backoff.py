"""``Backoff``: how long to wait before each retry.

Exponential growth with a cap, and jitter so that callers who failed together do not retry
together. With ``n`` the retry number counted from 0 (the wait before the second attempt is
``n = 0``) and ``ceiling(n) = min(cap, base * multiplier ** n)``:

========================  ==========================================================
``jitter="full"``         ``uniform(0, ceiling(n))`` (the default; AWS "full jitter")
``jitter="equal"``        ``ceiling(n) / 2 + uniform(0, ceiling(n) / 2)``
``jitter="decorrelated"`` ``min(cap, uniform(base, 3 * previous))``, ``previous`` being the
                          last delay (``base`` before the first retry)
``jitter="none"``         ``ceiling(n)``
========================  ==========================================================

Every delay lies in ``[0, cap]``. The random source is a parameter, so tests are exact.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from datetime import timedelta
from typing import Final, Literal

from resilient_http._validate import duration, number, show

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["full", "equal", "decorrelated", "none"]
_JITTERS: Final = ("full", "equal", "decorrelated", "none")


class Backoff:
    """Exponential backoff with a cap and jitter (the formulas are in the module docstring).

    Args:
        base: the first ceiling, in seconds (``float``) or a ``timedelta``; > 0. Default 0.1.
        multiplier: growth factor per retry; finite, >= 1 (1 gives a constant ceiling).
            Default 2.
        cap: the largest delay, in seconds or a ``timedelta``; >= ``base``. Default 10.
        jitter: ``"full"`` (default), ``"equal"``, ``"decorrelated"`` or ``"none"``.
        random: a callable returning floats uniform in ``[0, 1)``; default the ``random``
            module's. Pass ``random.Random(seed).random`` for reproducible delays.

    Raises:
        TypeError, ValueError: a parameter of the wrong type or out of range.

    Example::

        Backoff(0.5, cap=30)                       # 0..0.5 s, 0..1 s, 0..2 s, … at most 30 s
        [Backoff(1, jitter="none").delay(n) for n in range(4)]   # [1.0, 2.0, 4.0, 8.0]
    """

    __slots__ = ("base", "multiplier", "cap", "jitter", "random", "_max_n")

    def __init__(
        self,
        base: float | timedelta = 0.1,
        *,
        multiplier: float = 2.0,
        cap: float | timedelta = 10.0,
        jitter: Jitter = "full",
        random: Callable[[], float] | None = None,
    ) -> None:
        self.base: float = duration("base", base)
        self.multiplier = number("multiplier", multiplier, minimum=1.0)
        self.cap: float = duration("cap", cap)
        if self.cap < self.base:
            raise ValueError(f"cap must be >= base ({self.base:g} s), got {show(cap)}")
        if jitter not in _JITTERS:
            raise ValueError(
                f"jitter must be one of {', '.join(map(repr, _JITTERS))}, got {show(jitter)}"
            )
        self.jitter: Jitter = jitter
        if random is not None and not callable(random):
            raise TypeError(
                f"random must be a callable returning floats in [0, 1), got {show(random)}"
            )
        self.random: Callable[[], float] = random if random is not None else _random.random
        # Beyond this retry number the ceiling is the cap (and base * m ** n could overflow).
        if self.multiplier == 1.0:
            self._max_n = 0
        else:
            self._max_n = max(0, math.ceil(math.log(self.cap / self.base, self.multiplier)))

    def ceiling(self, n: int) -> float:
        """The un-jittered delay before retry ``n`` (from 0): ``min(cap, base * multiplier**n)``."""
        if n >= self._max_n:
            return self.cap if self.multiplier != 1.0 else self.base
        return min(self.cap, self.base * self.multiplier ** max(0, n))

    def delay(self, n: int, previous: float | None = None) -> float:
        """The delay before retry ``n`` (counted from 0), in seconds.

        ``previous`` is the delay used before the last retry; only ``"decorrelated"`` uses it
        (``None``: ``base``).
        """
        jitter = self.jitter
        if jitter == "full":
            return self.ceiling(n) * _unit(self.random())
        if jitter == "equal":
            half = self.ceiling(n) / 2
            return half + half * _unit(self.random())
        if jitter == "none":
            return self.ceiling(n)
        prev = self.base if previous is None or not previous > 0 else previous
        high = max(self.base, min(self.cap, prev * 3))
        return min(self.cap, self.base + (high - self.base) * _unit(self.random()))

    def __repr__(self) -> str:
        return (
            f"Backoff({self.base:g}, multiplier={self.multiplier:g}, cap={self.cap:g}, "
            f"jitter={self.jitter!r})"
        )


def _unit(x: float) -> float:
    """Clamp a user random value into [0, 1] (NaN counts as 0)."""
    return x if 0.0 <= x <= 1.0 else (1.0 if x > 1.0 else 0.0)
