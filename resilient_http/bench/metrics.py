"""Samples (one contender, one round) and their summary across rounds.

Throughput, CPU and the ratio to bare aiohttp are medians over rounds, the ratio computed
within each round (both contenders ran back to back, so a noisy neighbour moves both);
latency percentiles are over every call of every round, failed calls included; counts
(success, upstream requests, 429s) are totals.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BASELINE", "Sample", "Summary", "percentile", "summarize"]

BASELINE = "bare"
"""The contender every ratio is taken against."""


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of an ascending sequence, nearest rank; NaN when
    empty."""
    if not ordered:
        return math.nan
    if q <= 0:
        return ordered[0]
    rank = math.ceil(q / 100.0 * len(ordered))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Sample:
    """What one contender did in one round.

    ``upstream``, ``upstream_429`` and ``server_cpu`` come from the server's own counters
    (``None`` when the server cannot tell).
    """

    contender: str
    round: int
    calls: int
    ok: int
    wall: float
    latencies: list[float]
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: float = 0.0
    gc_collections: int = 0
    upstream: int | None = None
    upstream_429: int | None = None
    server_cpu: float | None = None

    @property
    def throughput(self) -> float:
        """Logical calls per second."""
        return self.calls / self.wall if self.wall > 0 else math.nan

    @property
    def goodput(self) -> float:
        """Successful calls per second."""
        return self.ok / self.wall if self.wall > 0 else math.nan


@dataclass
class Summary:
    """One contender across all rounds of a scenario variant (see the module docstring)."""

    contender: str
    rounds: int
    calls: int
    throughput: float
    goodput: float
    ratio: float | None
    p50: float
    p95: float
    p99: float
    max: float
    success: float
    amplification: float | None
    upstream_429: int | None
    share_429: float | None
    client_429: int
    cpu_per_call: float
    gc_per_1000: float
    server_cpu_share: float | None
    errors: dict[str, int]
    statuses: dict[int, int]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (seconds, ratios, counts)."""
        return {k: v for k, v in self.__dict__.items()}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarize(samples: Sequence[Sample], baseline: str = BASELINE) -> list[Summary]:
    """One :class:`Summary` per contender, in the order they first appear."""
    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        by_name.setdefault(s.contender, []).append(s)
    base_by_round = {s.round: s.throughput for s in by_name.get(baseline, [])}
    out: list[Summary] = []
    for name, group in by_name.items():
        latencies = sorted(x for s in group for x in s.latencies)
        calls = sum(s.calls for s in group)
        ratios = [
            s.throughput / base_by_round[s.round]
            for s in group
            if base_by_round.get(s.round)
        ]
        upstream_known = all(s.upstream is not None for s in group)
        upstream = sum(s.upstream or 0 for s in group) if upstream_known else None
        u429_known = all(s.upstream_429 is not None for s in group)
        u429 = sum(s.upstream_429 or 0 for s in group) if u429_known else None
        server_known = all(s.server_cpu is not None for s in group)
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        for s in group:
            statuses.update(s.statuses)
            errors.update(s.errors)
        out.append(
            Summary(
                contender=name,
                rounds=len(group),
                calls=calls,
                throughput=_median([s.throughput for s in group]),
                goodput=_median([s.goodput for s in group]),
                ratio=_median(ratios) if ratios else None,
                p50=percentile(latencies, 50),
                p95=percentile(latencies, 95),
                p99=percentile(latencies, 99),
                max=latencies[-1] if latencies else math.nan,
                success=sum(s.ok for s in group) / calls if calls else math.nan,
                amplification=(upstream / calls) if upstream is not None and calls else None,
                upstream_429=u429,
                share_429=(u429 / upstream) if u429 is not None and upstream else None,
                client_429=statuses.get(429, 0),
                cpu_per_call=_median([s.cpu / s.calls for s in group if s.calls]),
                gc_per_1000=1000.0 * sum(s.gc_collections for s in group) / calls
                if calls
                else math.nan,
                server_cpu_share=_median(
                    [(s.server_cpu or 0.0) / s.wall for s in group if s.wall > 0]
                )
                if server_known
                else None,
                errors=dict(errors),
                statuses=dict(statuses),
            )
        )
    return out
