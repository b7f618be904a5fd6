"""``tune``: run a grid of settings against a server profile and recommend the best.

Every grid point is a contender of its own, run interleaved with the others (and bare
aiohttp, for reference) exactly like a benchmark. The points are ranked by an objective: a
list of criteria, most important first, each compared at a resolution that ignores noise —

- ``success``: share of calls that succeeded, higher is better, to 0.1%;
- ``amplification``: upstream requests per call, lower is better, to 0.01;
- ``p99`` / ``p50``: latency, lower is better, to 0.1 ms;
- ``throughput``: calls per second, higher is better, to 1%;
- ``429``: share of upstream responses that were 429, lower is better, to 0.1%;
- ``cpu``: client CPU per call, lower is better, to 0.1 µs.

The default objective is success, then amplification, then p99.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from resilient_http.bench.contenders import from_specs, lookup
from resilient_http.bench.metrics import BASELINE, Summary
from resilient_http.bench.runner import Entry, Progress, VariantResult, run_variant
from resilient_http.bench.scenario import LayerSpec, Scenario, TuneSpec
from resilient_http.bench.upstream import Upstream

__all__ = [
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
    """The grid's results, ranked."""

    variant: VariantResult
    points: list[GridPoint]
    objective: tuple[str, ...]
    ranking: list[str]
    best: GridPoint | None

    @property
    def code(self) -> str | None:
        """The recommended stack as a short Python program, or ``None``."""
        return recommendation(self.best.code) if self.best else None


def _quant(value: float | None, step: float, default: float) -> float:
    if value is None or math.isnan(value):
        return default
    return round(value / step)


def objective_key(s: Summary, objective: Sequence[str]) -> tuple[float, ...]:
    """A sort key (smaller is better) for a summary under an objective (module docstring)."""
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


async def tune(
    scenario: Scenario,
    upstream: Upstream,
    server: str,
    spec: TuneSpec,
    *,
    concurrency: int | None = None,
    baseline: bool = True,
    progress: Progress | None = None,
) -> TuneResult:
    """Run every grid point of ``spec`` on the scenario's profile (and bare aiohttp when
    ``baseline``), then rank them. A point whose layers are missing is a ``LookupError``."""
    points = _points(scenario, spec)
    for point in points:
        reason = point.entry.contender.missing(point.entry.settings)
        if reason is not None:
            raise LookupError(f"cannot tune {spec.base}: {reason}")
    entries = [p.entry for p in points]
    if baseline:
        entries.insert(0, Entry(lookup(BASELINE), scenario.settings.get(BASELINE, {})))
    variant = await run_variant(
        scenario, entries, upstream, server,
        concurrency if concurrency is not None else scenario.load.concurrency[0],
        progress=progress,
    )
    ranking = rank(variant.summaries, spec.objective, [p.name for p in points])
    best = next((p for p in points if ranking and p.name == ranking[0]), None)
    return TuneResult(variant, points, spec.objective, ranking, best)


def plot_tune(result: TuneResult, directory: Any) -> Any:
    """The objective over the grid (success, amplification, p99 per point), as a PNG."""
    from pathlib import Path

    from resilient_http.bench.report import pyplot

    plt = pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    by_name = {s.contender: s for s in result.variant.summaries}
    names = [p.name for p in result.points]
    summaries = [by_name[n] for n in names]
    colors = ["tab:green" if result.best and n == result.best.name else "tab:gray"
              for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(15, max(3.0, 0.45 * len(names) + 1.5)),
                             sharey=True)
    panels = (
        ("success %", [s.success * 100 for s in summaries]),
        ("upstream requests per call",
         [s.amplification if s.amplification is not None else 0.0 for s in summaries]),
        ("p99 latency (ms)", [s.p99 * 1e3 for s in summaries]),
    )
    for ax, (label, values) in zip(axes, panels, strict=True):
        ax.barh(names, values, color=colors)
        ax.set_xlabel(label)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    fig.suptitle(f"tune {result.variant.scenario.name}: objective "
                 f"{' > '.join(result.objective)} (best in green)")
    path = out / f"tune-{result.variant.scenario.name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
