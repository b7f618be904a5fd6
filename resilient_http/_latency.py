"""Recent latencies per key, in fixed memory, and their quantiles: what ``Hedge("p95")``
learns its delay from.

A :class:`LatencyRing` keeps the last ``size`` latencies of one host in a ring (a list
allocated once) and answers a quantile from a sorted copy, recomputed only every
``size // 8`` new samples: a quantile is read on every call, the sort (a few microseconds for
256 floats) happens on one call in 32. :class:`Latencies` maps keys (hosts) to rings and
holds at most ``max_keys`` of them, forgetting the least recently *added* key beyond that.

Pure logic: no clock, nothing awaits.
"""

from __future__ import annotations

import math
from typing import Any

from resilient_http._validate import show

__all__ = ["LatencyRing", "Latencies", "parse_quantile"]


def parse_quantile(text: str) -> float:
    """``"p95"`` → 0.95, ``"p99.9"`` → 0.999; ``ValueError`` naming what is allowed."""
    if not isinstance(text, str) or not text.startswith("p"):
        raise ValueError(
            f"delay must be seconds, a timedelta or 'pNN' (e.g. 'p95'), got {show(text)}"
        )
    try:
        value = float(text[1:])
    except ValueError:
        value = math.nan
    if not 0 < value < 100:  # also rejects NaN
        raise ValueError(
            f"delay must be seconds, a timedelta or 'pNN' with 0 < NN < 100 (e.g. 'p95'), "
            f"got {show(text)}"
        )
    return value / 100


class LatencyRing:
    """The last ``size`` latencies (seconds) of one key.

    Args:
        size: samples kept, >= 8.
    """

    __slots__ = ("_ring", "_next", "count", "_sorted", "_stale", "_every")

    def __init__(self, size: int = 256) -> None:
        self._ring: list[float] = [0.0] * size
        self._next = 0
        self.count = 0
        """Samples recorded so far (not capped)."""
        self._sorted: list[float] = []
        self._stale = 0
        self._every = max(1, size // 8)

    def add(self, seconds: float) -> None:
        """Record one latency."""
        ring = self._ring
        ring[self._next] = seconds
        self._next = (self._next + 1) % len(ring)
        self.count += 1
        self._stale += 1

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 < q < 1) of the samples kept (nearest rank); ``nan`` when
        there are none. Up to ``size // 8`` of the newest samples may not be reflected yet
        (all of them are once fewer than ``size // 8`` were seen)."""
        if self._stale and (self._stale >= self._every or len(self._sorted) < self._every):
            n = min(self.count, len(self._ring))
            self._sorted = sorted(self._ring[:n]) if n < len(self._ring) else sorted(self._ring)
            self._stale = 0
        data = self._sorted
        if not data:
            return math.nan
        rank = min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))
        return data[rank]


class Latencies:
    """A :class:`LatencyRing` per key, at most ``max_keys`` of them.

    Args:
        size: samples kept per key.
        max_keys: keys kept; the oldest key is forgotten beyond that.
    """

    __slots__ = ("size", "max_keys", "_rings")

    def __init__(self, size: int = 256, max_keys: int = 1024) -> None:
        self.size = size
        self.max_keys = max_keys
        self._rings: dict[Any, LatencyRing] = {}

    def get(self, key: Any) -> LatencyRing | None:
        """The ring of ``key``, or ``None`` when nothing was recorded for it."""
        return self._rings.get(key)

    def ring(self, key: Any) -> LatencyRing:
        """The ring of ``key``, made (and the oldest key dropped if full) when missing."""
        ring = self._rings.get(key)
        if ring is None:
            if len(self._rings) >= self.max_keys:
                del self._rings[next(iter(self._rings))]
            ring = self._rings[key] = LatencyRing(self.size)
        return ring

    def __len__(self) -> int:
        return len(self._rings)
