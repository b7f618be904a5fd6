"""``tune``: run a grid of settings against a server profile and recommend the best, or say
that the grid's points do not differ.

Every grid point is a contender of its own, run interleaved with the others (and bare
aiohttp, for reference) exactly like a benchmark: first the scenario's rounds, then one more
round at a time until one point is separated from every other by confidence intervals (see
:mod:`resilient_http.bench.verdict`) or the budget (``max_rounds``, ``max_seconds``) is
spent. The objective is a list of criteria, most important first:

- ``success``: share of calls that succeeded, higher is better;
- ``amplification``: upstream requests per call, lower is better;
- ``p99`` / ``p50``: latency, lower is better;
- ``throughput``: calls per second, higher is better;
- ``429``: share of upstream responses that were 429, lower is better;
- ``cpu``: client CPU per call, lower is better.

The default objective is success, then amplification, then p99. The ranking shown orders the
points by how many others they beat, then by point estimate (each criterion compared at a
resolution that ignores noise: 0.1 % success, 0.01 requests per call, 0.1 ms, 1 % of
throughput, 0.1 % of 429s, 0.1 µs of CPU).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from resilient_http.bench.contenders import from_specs, lookup
from resilient_http.bench.metrics import BASELINE, Sample, summarize
from resilient_http.bench.runner import Entry, Progress, VariantResult, run_variant
from resilient_http.bench.scenario import LayerSpec, Scenario, TuneSpec
from resilient_http.bench.stats import Interval
from resilient_http.bench.upstream import Upstream
from resilient_http.bench.verdict import Verdict, decide, intervals, objective_key, rank

__all__ = [
    "MAX_ROUNDS",
    "MAX_SECONDS",
    "GridPoint",
    "TuneResult",
    "apply_param",
    "grid",
    "objective_key",
    "parse_param",
    "rank",
    "recommendation",
    "tune",
]


MAX_ROUNDS = 10
"""The default budget of rounds of ``tune`` (the scenario's rounds included)."""

MAX_SECONDS = 300.0
"""The default budget of time of ``tune``, seconds: no new round starts after it."""


def _literal(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text.strip()


def parse_param(text: str) -> tuple[str, tuple[Any, ...]]:
    """``"Retry.attempts=2,3,4"`` → ``("Retry.attempts", (2, 3, 4))``. Values are ints,
    floats, ``true``/``false``, ``none``, or else strings."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise ValueError(f"--param must look like NAME=v1,v2,..., got {text!r}")
    return name, tuple(_literal(v) for v in values.split(","))


def grid(params: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values, the first parameter varying slowest."""
    names = list(params)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*params.values())]


def _split(name: str) -> tuple[str, int, str]:
    layer, dot, arg = name.partition(".")
    if not dot or not layer or not arg:
        raise ValueError(
            f"a stack parameter is Layer.argument or Layer#N.argument, got {name!r}"
        )
    layer, _, nth = layer.partition("#")
    if nth and (not nth.isdigit() or int(nth) < 1):
        raise ValueError(f"in {name!r}, #N must be a positive number")
    return layer, int(nth or 1), arg


def apply_param(specs: tuple[LayerSpec, ...], name: str, value: Any) -> tuple[LayerSpec, ...]:
    """The stack with ``Layer[#N].argument`` set to ``value`` (N-th layer of that type)."""
    layer, nth, arg = _split(name)
    seen = 0
    out = list(specs)
    for k, spec in enumerate(specs):
        if spec.type == layer:
            seen += 1
            if seen == nth:
                out[k] = replace(spec, kwargs={**spec.kwargs, arg: value})
                return tuple(out)
    kinds = ", ".join(s.type for s in specs)
    raise ValueError(f"parameter {name!r}: the stack has no layer {layer} #{nth} (it has {kinds})")


@dataclass(frozen=True)
class GridPoint:
    """One combination of the grid, as a runnable contender."""

    name: str
    values: Mapping[str, Any]
    entry: Entry
    code: str


@dataclass
class TuneResult:
    """The grid's results, ranked on confidence intervals.

    Attributes:
        variant: every round of every point (and bare aiohttp), summarized.
        points: the grid, in order.
        objective: the criteria, most important first.
        ranking: the points' names, best first (see :class:`~resilient_http.bench.verdict.
            Verdict`).
        best: the winner, separated from every other point; ``None`` when there is none.
        verdict: what the intervals allow one to say.
        intervals: point name → criterion → interval.
        rounds: the rounds run.
    """

    variant: VariantResult
    points: list[GridPoint]
    objective: tuple[str, ...]
    ranking: list[str]
    best: GridPoint | None
    verdict: Verdict | None = None
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    rounds: int = 0

    @property
    def suggested(self) -> GridPoint | None:
        """The winner, or else the default suggestion among the undistinguished leaders."""
        if self.best is not None:
            return self.best
        name = self.verdict.suggestion if self.verdict else None
        return next((p for p in self.points if p.name == name), None)

    @property
    def code(self) -> str | None:
        """The winner's stack (else the default suggestion's) as a short Python program, or
        ``None``."""
        point = self.suggested
        return recommendation(point.code) if point else None


def recommendation(expression: str) -> str:
    """A short program using the middlewares ``expression``."""
    return (
        "import aiohttp\n"
        "import resilient_http as rh\n\n"
        f"middlewares = {expression}\n"
        "session = aiohttp.ClientSession(middlewares=middlewares)\n"
    )


def _points(scenario: Scenario, spec: TuneSpec) -> list[GridPoint]:
    if not spec.params:
        raise ValueError("nothing to tune: give --param NAME=v1,v2 or [tune] params")
    points: list[GridPoint] = []
    stacks = scenario.stacks
    for values in grid(spec.params):
        label = ", ".join(f"{k}={v}" for k, v in values.items())
        if spec.base in stacks:
            specs = stacks[spec.base]
            for k, v in values.items():
                specs = apply_param(specs, k, v)
            contender = from_specs(label, specs)
            settings: Mapping[str, Any] = {}
        else:
            contender = lookup(spec.base)
            settings = {**scenario.settings.get(spec.base, {}), **values}
        if contender.code is None:
            raise ValueError(f"{spec.base!r} is not one of our stacks: it cannot be tuned")
        points.append(GridPoint(label, values, Entry(contender, settings, label),
                                contender.code(settings)))
    return points


def judge(samples: Sequence[Sample], points: Sequence[GridPoint], objective: Sequence[str],
          *, seed: int = 0) -> tuple[Verdict, dict[str, dict[str, Interval]]]:
    """The verdict over the grid points' samples, and every point's intervals."""
    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        by_name.setdefault(s.contender, []).append(s)
    names = [p.name for p in points if p.name in by_name]
    summaries = {s.contender: s for s in summarize([x for n in names for x in by_name[n]])}
    found = {n: intervals(by_name[n], objective, seed=seed) for n in names}
    key = {n: objective_key(summaries[n], objective) for n in names}
    cost = {n: summaries[n].amplification or math.nan for n in names}
    return decide(found, objective, key, cost), found


async def tune(
    scenario: Scenario,
    upstream: Upstream,
    server: str,
    spec: TuneSpec,
    *,
    concurrency: int | None = None,
    baseline: bool = True,
    progress: Progress | None = None,
    max_rounds: int | None = None,
    max_seconds: float = MAX_SECONDS,
    seed: int = 0,
) -> TuneResult:
    """Run every grid point of ``spec`` on the scenario's profile (and bare aiohttp when
    ``baseline``): the scenario's rounds, then one round at a time until a point beats every
    other or ``max_rounds`` (default :data:`MAX_ROUNDS`, at least the scenario's rounds)
    rounds were run or ``max_seconds`` (default :data:`MAX_SECONDS`) have passed; ``seed``
    seeds the bootstrap. A point whose layers are missing is a ``LookupError``."""
    points = _points(scenario, spec)
    for point in points:
        reason = point.entry.contender.missing(point.entry.settings)
        if reason is not None:
            raise LookupError(f"cannot tune {spec.base}: {reason}")
    entries = [p.entry for p in points]
    if baseline:
        entries.insert(0, Entry(lookup(BASELINE), scenario.settings.get(BASELINE, {})))
    first = scenario.load.rounds
    budget = max(first, max_rounds if max_rounds is not None else MAX_ROUNDS)
    in_flight = concurrency if concurrency is not None else scenario.load.concurrency[0]
    started = time.monotonic()
    samples: list[Sample] = []
    done = 0
    while True:
        batch = first if done == 0 else 1
        step = replace(scenario, load=replace(scenario.load, rounds=batch))
        part = await run_variant(step, entries, upstream, server, in_flight, progress=progress)
        for sample in part.samples:
            sample.round += done
        samples += part.samples
        done += batch
        verdict, found = judge(samples, points, spec.objective, seed=seed)
        if (verdict.winner is not None or done >= budget
                or time.monotonic() - started >= max_seconds):
            break
    whole = replace(scenario, load=replace(scenario.load, rounds=done))
    variant = replace(part, scenario=whole, samples=samples, summaries=summarize(samples))
    best = next((p for p in points if p.name == verdict.winner), None)
    return TuneResult(variant, points, spec.objective, list(verdict.ranking), best, verdict,
                      found, done)
