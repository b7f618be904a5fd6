"""Samples (one contender, one round) and their summary across rounds.

Throughput, CPU and the ratio to bare aiohttp are medians over rounds, the ratio computed
within each round (both contenders ran back to back, so a noisy neighbour moves both);
latency percentiles are over every call of every round, failed calls included; counts
(success, upstream requests, 429s) are totals.

Two optional parts, present only when the scenario asks for them:

- :class:`Arrivals` (an open-loop ``rate``): the offered rate, the rate of starts achieved
  (median over rounds), late calls (total) and the longest lag; ``on_schedule`` when at most
  1 % of the calls were late.
- :class:`WindowStats` (an outage window): the success rate of the calls started before,
  during and after the window; upstream requests per call during it (the server's count of
  requests arriving in the window over the calls started in it); how long after the end the
  first call started after the end succeeded (median over rounds, ``None`` if none did in any
  round); and the success rate of the calls started in the first second after the end.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "BASELINE",
    "ON_SCHEDULE",
    "Arrivals",
    "Sample",
    "Summary",
    "WindowStats",
    "arrivals",
    "max_in_window",
    "noise",
    "percentile",
    "summarize",
    "window_stats",
]

ON_SCHEDULE = 0.01
"""The share of late calls up to which an open-loop run counts as on schedule."""

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
    rate: float | None = None
    """The offered rate of an open-loop load (calls/s), ``None`` for a closed loop."""
    late: int = 0
    max_lag: float = 0.0
    last_start: float = 0.0
    """Seconds from the start of the load to the start of its last call."""
    window: tuple[float, float] | None = None
    """The outage window (seconds from the start of the load), if any."""
    timeline: list[tuple[float, float, bool]] | None = None
    """Each call's ``(start, end, ok)`` in seconds from the start (kept with a window)."""
    upstream_during: int | None = None
    """Requests the server received during the outage window."""
    failed: list[float] = field(default_factory=list)
    """The latencies of the calls that failed (seconds; in ``latencies`` too)."""

    @property
    def achieved_rate(self) -> float:
        """Open loop: calls started per second (``calls / (last_start + 1 / rate)``, which
        is ``rate`` when every call started on time); NaN for a closed loop."""
        if self.rate is None:
            return math.nan
        return self.calls / (self.last_start + 1.0 / self.rate)

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
    arrivals: Arrivals | None = None
    window: WindowStats | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (seconds, ratios, counts)."""
        return asdict(self)


@dataclass(frozen=True)
class Arrivals:
    """An open-loop load across rounds (see the module docstring).

    Attributes:
        offered: the asked rate, calls/s.
        achieved: calls started per second (median over rounds).
        late: calls that waited for a caller past their due time (total).
        late_share: ``late`` over all calls.
        max_lag: the longest such wait, seconds (all rounds).
        on_schedule: at most :data:`ON_SCHEDULE` of the calls were late.
    """

    offered: float
    achieved: float
    late: int
    late_share: float
    max_lag: float
    on_schedule: bool


@dataclass(frozen=True)
class WindowStats:
    """An outage window across rounds (see the module docstring). Shares are 0..1, ``None``
    when no call fell in that part.

    Attributes:
        start: seconds from the start of the load when the route went down.
        end: seconds from the start of the load when it came back.
        ok_before: success rate of the calls started before the window.
        ok_during: ... started during it.
        ok_after: ... started after it.
        calls_during: calls started during the window (total).
        amplification_during: requests the server received during the window per call
            started in it; ``None`` when the server cannot tell.
        recovery: seconds from the end of the window to the end of the first successful
            call started after it (median over the rounds where one succeeded); ``None``
            when none did in any round.
        ok_first_second: success rate of the calls started in the first second after the
            end.
    """

    start: float
    end: float
    ok_before: float | None
    ok_during: float | None
    ok_after: float | None
    calls_during: int
    amplification_during: float | None
    recovery: float | None
    ok_first_second: float | None


def arrivals(group: Sequence[Sample]) -> Arrivals | None:
    """The open-loop part of a contender's samples, or ``None`` for a closed loop."""
    rate = group[0].rate if group else None
    if rate is None:
        return None
    calls = sum(s.calls for s in group)
    late = sum(s.late for s in group)
    return Arrivals(
        offered=rate,
        achieved=_median([s.achieved_rate for s in group]),
        late=late,
        late_share=late / calls if calls else math.nan,
        max_lag=max(s.max_lag for s in group),
        on_schedule=late <= ON_SCHEDULE * calls,
    )


def _share(ok: int, n: int) -> float | None:
    return ok / n if n else None


def window_stats(group: Sequence[Sample]) -> WindowStats | None:
    """The outage-window part of a contender's samples, or ``None`` without a window."""
    window = group[0].window if group else None
    if window is None:
        return None
    start, end = window
    counts = [0] * 8  # before, during, after, first second: calls then successes
    recoveries: list[float] = []
    upstream: int | None = 0
    for s in group:
        first: float | None = None
        for t0, t1, ok in s.timeline or ():
            part = 0 if t0 < start else 1 if t0 < end else 2
            counts[part] += 1
            counts[4 + part] += ok
            if part == 2:
                if t0 < end + 1.0:
                    counts[3] += 1
                    counts[7] += ok
                if ok and (first is None or t1 < first):
                    first = t1
        if first is not None:
            recoveries.append(first - end)
        upstream = None if upstream is None or s.upstream_during is None else (
            upstream + s.upstream_during
        )
    return WindowStats(
        start=start,
        end=end,
        ok_before=_share(counts[4], counts[0]),
        ok_during=_share(counts[5], counts[1]),
        ok_after=_share(counts[6], counts[2]),
        calls_during=counts[1],
        amplification_during=upstream / counts[1] if upstream is not None and counts[1]
        else None,
        recovery=_median(recoveries) if recoveries else None,
        ok_first_second=_share(counts[7], counts[3]),
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def noise(samples: Sequence[Sample], baseline: str = BASELINE) -> float | None:
    """How far bare aiohttp's own throughput moved between rounds: half its range over its
    median (0.1 = ±10 %), ``None`` with fewer than three rounds of it. The same code measured
    twice moves that much, so ratios closer to 1 than this are not resolved by the run."""
    rates = [s.throughput for s in samples if s.contender == baseline and s.throughput > 0]
    if len(rates) < 3:
        return None
    return (max(rates) - min(rates)) / 2 / statistics.median(rates)


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
                arrivals=arrivals(group),
                window=window_stats(group),
            )
        )
    return out


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most arrivals in any window of ``window`` seconds (starting at an arrival)."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
