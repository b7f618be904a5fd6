"""Confidence intervals for the tuner: pure functions, no I/O, seeded randomness.

- :func:`wilson`: the Wilson score interval of a proportion (success rates, 429 shares);
  unlike the normal approximation it stays inside 0..1 and is honest at 0/n and n/n.
- :func:`bootstrap`: the percentile bootstrap of any statistic (p99 latency, a median over
  rounds), ``resamples`` resamples drawn from a ``random.Random(seed)``: the same data and
  seed give the same interval.
- :func:`poisson_excess`: a count of extra events per unit (upstream requests per call over
  one), normal approximation of a Poisson count.
- :func:`separated`: whether two intervals say one value is better than the other by at
  least a resolution (the smallest difference that matters).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import NamedTuple

__all__ = [
    "CONFIDENCE",
    "MIN_TAIL",
    "RESAMPLES",
    "Interval",
    "bootstrap",
    "bootstrap_percentile",
    "poisson_excess",
    "separated",
    "wilson",
    "z_score",
]

CONFIDENCE = 0.95
"""The default two-sided confidence level."""

RESAMPLES = 1000
"""The default number of bootstrap resamples."""

MIN_TAIL = 10
"""Values a percentile's bootstrap needs beyond it for an upper bound (1,000 calls for a
p99)."""


class Interval(NamedTuple):
    """A point estimate with its confidence interval, ``low <= estimate <= high``; all NaN
    when there is no data."""

    low: float
    estimate: float
    high: float

    @property
    def known(self) -> bool:
        """False when there was no data (NaN)."""
        return not (math.isnan(self.low) or math.isnan(self.high))


_UNKNOWN = Interval(math.nan, math.nan, math.nan)


def z_score(confidence: float = CONFIDENCE) -> float:
    """The two-sided standard normal quantile: 1.96 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of ``successes`` out of ``n`` (Wilson 1927; Newcombe 1998,
    method 3): 0/10 gives 0..0.2775, 10/10 0.7225..1, 95/100 0.8883..0.9785 at 95 %."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return _UNKNOWN
    z = z_score(confidence)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    return Interval(max(0.0, centre - half), p, min(1.0, centre + half))


def bootstrap(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The percentile bootstrap interval of ``statistic`` over ``values``: ``resamples``
    resamples of the same size, drawn with replacement from ``random.Random(seed)``; the
    estimate is the statistic of ``values`` itself."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples!r}")
    z_score(confidence)  # validates
    if not values:
        return _UNKNOWN
    rng = random.Random(seed)
    n = len(values)
    stats = [statistic(rng.choices(values, k=n)) for _ in range(resamples)]
    return _interval(stats, statistic(values), confidence)


def _interval(stats: list[float], estimate: float, confidence: float) -> Interval:
    """The ``confidence`` central range of the resampled ``stats``."""
    stats.sort()
    size = len(stats)
    tail = (1.0 - confidence) / 2.0
    low = stats[max(0, math.floor(tail * size))]
    high = stats[min(size - 1, math.ceil((1.0 - tail) * size) - 1)]
    return Interval(min(low, estimate), estimate, max(high, estimate))


def bootstrap_percentile(
    values: Sequence[float],
    q: float,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    min_tail: int = MIN_TAIL,
) -> Interval:
    """:func:`bootstrap` of the ``q``-th percentile (0-100, nearest rank, as
    :func:`resilient_http.bench.metrics.percentile`), computed without building the
    resamples: a resample's percentile of rank ``r`` is the value at the ``(n - r + 1)``-th
    largest of ``n`` uniform draws of an index, and those top draws are generated directly
    (the largest of ``n`` uniforms is ``W ** (1 / n)``, the next ``U · W' ** (1 / (n - 1))``,
    ...). Same distribution as resampling, ``n - r + 1`` draws instead of ``n`` per resample
    (31 instead of 3,000 for a p99 of 3,000 calls).

    The bootstrap cannot bound a percentile from above with too few values beyond it (a
    p99 of 100 calls is their second largest, and no resample exceeds their maximum): with
    fewer than ``min_tail`` values at or above the percentile, the upper bound is
    infinite."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be a percentile between 0 and 100, got {q!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples!r}")
    z_score(confidence)  # validates
    if not values:
        return _UNKNOWN
    ordered = sorted(values)
    n = len(ordered)
    rank = min(max(1, math.ceil(q / 100.0 * n)), n)
    depth = n - rank + 1
    rng = random.Random(seed)
    stats: list[float] = []
    for _ in range(resamples):
        u = 1.0
        for m in range(n, n - depth, -1):
            u *= (1.0 - rng.random()) ** (1.0 / m)
        stats.append(ordered[min(int(u * n), n - 1)])
    found = _interval(stats, ordered[rank - 1], confidence)
    return found if depth >= min_tail else found._replace(high=math.inf)


def poisson_excess(total: int, units: int, confidence: float = CONFIDENCE) -> Interval:
    """``total / units`` with an interval that treats the events beyond one per unit
    (``total - units``, e.g. retries) as a Poisson count: ``1 + (x ± z·√max(x, 1)) / units``.
    """
    if units <= 0:
        return _UNKNOWN
    z = z_score(confidence)
    extra = total - units
    half = z * math.sqrt(max(abs(extra), 1))
    return Interval((units + extra - half) / units, total / units, (units + extra + half) / units)


def separated(better: Interval, worse: Interval, *, lower_is_better: bool,
              resolution: float = 0.0) -> bool:
    """True when ``better`` is better than ``worse`` beyond doubt: the intervals do not
    overlap (in ``better``'s favour) and the estimates differ by at least ``resolution``.
    Unknown intervals are never separated."""
    if not (better.known and worse.known):
        return False
    if lower_is_better:
        return (better.high < worse.low
                and worse.estimate - better.estimate >= resolution)
    return better.low > worse.high and better.estimate - worse.estimate >= resolution
