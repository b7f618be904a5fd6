"""The tuner's decision: confidence intervals per criterion, and a winner only when it is
separated from every other grid point.

Each criterion of the objective gets an interval per grid point (95 % by default):

- ``success``: Wilson score interval of successful calls over calls;
- ``amplification``: upstream requests per call, the requests beyond one per call taken as a
  Poisson count;
- ``p99`` / ``p50``: bootstrap (1,000 seeded resamples) of the percentile over every call;
- ``throughput`` / ``cpu``: bootstrap of the median over rounds of calls per second / client
  CPU per call;
- ``429``: Wilson score interval of 429 responses over upstream requests.

Point A *beats* point B when, going down the objective, the first criterion on which their
intervals do not overlap favours A, and the estimates differ there by at least the
criterion's resolution (:data:`RESOLUTION`: smaller differences do not matter to anyone);
criteria whose intervals overlap count as ties. The *winner* beats every other point. Without
one, the *leaders* (the points nobody beats) are reported as not significantly different,
and the cheapest of them (fewest upstream requests per call, then the first in the grid) is
named as a default suggestion, which is not a measured win.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from resilient_http.bench.metrics import Sample, Summary
from resilient_http.bench.stats import (
    CONFIDENCE,
    Interval,
    bootstrap,
    bootstrap_percentile,
    poisson_excess,
    separated,
    wilson,
)

__all__ = [
    "LOWER_IS_BETTER",
    "RESOLUTION",
    "Verdict",
    "beats",
    "decide",
    "intervals",
    "objective_key",
    "rank",
]

LOWER_IS_BETTER = {
    "success": False, "amplification": True, "p99": True, "p50": True,
    "throughput": False, "429": True, "cpu": True,
}
"""The direction of each criterion."""

RESOLUTION: Mapping[str, tuple[float, float]] = {
    "success": (0.001, 0.0),
    "amplification": (0.01, 0.0),
    "p99": (0.0001, 0.10),
    "p50": (0.0001, 0.10),
    "throughput": (0.0, 0.10),
    "429": (0.001, 0.0),
    "cpu": (0.0, 0.10),
}
"""The smallest difference that matters per criterion, as ``(absolute, relative)``: the
larger of the absolute one and the relative one times the larger estimate (0.1 % success,
0.01 upstream requests per call, 10 % and at least 0.1 ms of latency, 10 % of throughput or
CPU, 0.1 % of 429s)."""


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def intervals(samples: Sequence[Sample], objective: Sequence[str], *, seed: int = 0,
              confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """The interval of every criterion of ``objective`` over one point's ``samples``."""
    calls = sum(s.calls for s in samples)
    ok = sum(s.ok for s in samples)
    up_known = bool(samples) and all(s.upstream is not None for s in samples)
    upstream = sum(s.upstream or 0 for s in samples)
    out: dict[str, Interval] = {}
    for criterion in objective:
        if criterion == "success":
            out[criterion] = wilson(ok, calls, confidence)
        elif criterion == "amplification":
            out[criterion] = (poisson_excess(upstream, calls, confidence) if up_known
                              else Interval(math.nan, math.nan, math.nan))
        elif criterion in ("p99", "p50"):
            latencies = [x for s in samples for x in s.latencies]
            out[criterion] = bootstrap_percentile(latencies, float(criterion[1:]), seed=seed,
                                                  confidence=confidence)
        elif criterion == "throughput":
            out[criterion] = bootstrap([s.throughput for s in samples if s.wall > 0], _median,
                                       seed=seed, confidence=confidence)
        elif criterion == "cpu":
            out[criterion] = bootstrap([s.cpu / s.calls for s in samples if s.calls], _median,
                                       seed=seed, confidence=confidence)
        elif criterion == "429":
            known = up_known and all(s.upstream_429 is not None for s in samples)
            out[criterion] = (wilson(sum(s.upstream_429 or 0 for s in samples), upstream,
                                     confidence) if known and upstream
                              else Interval(math.nan, math.nan, math.nan))
        else:
            raise ValueError(f"unknown objective criterion {criterion!r}; known: "
                             + ", ".join(LOWER_IS_BETTER))
    return out


def _resolution(criterion: str, a: Interval, b: Interval) -> float:
    absolute, relative = RESOLUTION[criterion]
    return max(absolute, relative * max(abs(a.estimate), abs(b.estimate)))


def beats(a: Mapping[str, Interval], b: Mapping[str, Interval],
          objective: Sequence[str]) -> str | None:
    """The criterion on which ``a`` beats ``b`` (module docstring), or ``None``."""
    for criterion in objective:
        x, y = a[criterion], b[criterion]
        lower = LOWER_IS_BETTER[criterion]
        step = _resolution(criterion, x, y)
        if separated(x, y, lower_is_better=lower, resolution=step):
            return criterion
        if separated(y, x, lower_is_better=lower, resolution=step):
            return None
    return None


def _quant(value: float | None, step: float, default: float) -> float:
    if value is None or math.isnan(value):
        return default
    return round(value / step)


def objective_key(s: Summary, objective: Sequence[str]) -> tuple[float, ...]:
    """A sort key (smaller is better) for a summary's point estimates under an objective,
    each criterion rounded to a step that ignores noise: 0.1 % success, 0.01 requests per
    call, 0.1 ms of latency, 1 % of throughput, 0.1 % of 429s, 0.1 µs of CPU."""
    key: list[float] = []
    for criterion in objective:
        if criterion == "success":
            key.append(-_quant(s.success, 0.001, 0.0))
        elif criterion == "amplification":
            key.append(_quant(s.amplification, 0.01, math.inf))
        elif criterion == "p99":
            key.append(_quant(s.p99, 0.0001, math.inf))
        elif criterion == "p50":
            key.append(_quant(s.p50, 0.0001, math.inf))
        elif criterion == "throughput":
            key.append(-_quant(math.log(s.throughput) if s.throughput > 0 else None, 0.01, -1e9))
        elif criterion == "429":
            key.append(_quant(s.share_429, 0.001, 0.0))
        elif criterion == "cpu":
            key.append(_quant(s.cpu_per_call, 1e-7, math.inf))
        else:
            raise ValueError(f"unknown objective criterion {criterion!r}")
    return tuple(key)


def rank(summaries: Sequence[Summary], objective: Sequence[str],
         candidates: Sequence[str]) -> list[str]:
    """Candidate names, best first (ties keep the grid's order)."""
    by_name = {s.contender: s for s in summaries}
    names = [n for n in candidates if n in by_name]
    return sorted(names, key=lambda n: objective_key(by_name[n], objective))


@dataclass(frozen=True)
class Verdict:
    """What the intervals allow one to say about the grid.

    Attributes:
        ranking: the points, most other points beaten first, then by point estimate.
        winner: the point that beats every other one, or ``None``.
        decided_by: ``winner``'s deciding criterion against the runner-up.
        leaders: the points no other point beats (the winner alone when there is one).
        suggestion: without a winner, the cheapest leader (not a measured win).
    """

    ranking: tuple[str, ...]
    winner: str | None
    decided_by: str | None
    leaders: tuple[str, ...]
    suggestion: str | None

    @property
    def message(self) -> str:
        """One sentence for the user."""
        if self.winner is not None:
            runner_up = self.ranking[1] if len(self.ranking) > 1 else None
            if runner_up is None:
                return f"{self.winner} is the only grid point"
            return (f"{self.winner} wins: separated from the runner-up {runner_up} on "
                    f"{self.decided_by} (intervals do not overlap)")
        names = " and ".join([", ".join(self.leaders[:-1]), self.leaders[-1]]
                             if len(self.leaders) > 1 else self.leaders)
        return (f"no significant difference between {names}; default suggestion (the "
                f"cheapest, not a measured win): {self.suggestion}")


def decide(points: Mapping[str, Mapping[str, Interval]], objective: Sequence[str],
           key: Mapping[str, tuple[float, ...]], cost: Mapping[str, float]) -> Verdict:
    """The :class:`Verdict` over ``points`` (name → intervals, in grid order); ``key`` is
    each point's sort key by point estimate, ``cost`` its upstream requests per call."""
    names = list(points)
    wins = {a: [b for b in names if b != a and beats(points[a], points[b], objective)]
            for a in names}
    ranking = tuple(sorted(names, key=lambda n: (-len(wins[n]), key[n])))
    beaten = {b for a in names for b in wins[a]}
    leaders = tuple(n for n in ranking if n not in beaten)
    winner = next((n for n in names if len(wins[n]) == len(names) - 1), None)
    if winner is not None:
        runner_up = ranking[1] if len(ranking) > 1 else None
        decided = beats(points[winner], points[runner_up], objective) if runner_up else None
        return Verdict(ranking, winner, decided, (winner,), None)
    order = {n: k for k, n in enumerate(names)}

    def price(name: str) -> tuple[float, int]:
        c = cost.get(name, math.inf)
        return (math.inf if math.isnan(c) else round(c, 2), order[name])

    cheapest = min(leaders, key=price)
    return Verdict(ranking, None, None, leaders, cheapest)
