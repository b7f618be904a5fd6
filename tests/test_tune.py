"""The tuner that can be trusted: confidence intervals against published values, the
decision rule on made-up intervals, and ``tune`` on real loopback servers — a grid whose
points cannot differ says so; one whose points do picks the same winner every time."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from resilient_http.bench import report
from resilient_http.bench.plots import nines, plot_tune
from resilient_http.bench.scenario import TuneSpec, parse
from resilient_http.bench.stats import (
    Interval,
    bootstrap,
    bootstrap_percentile,
    poisson_excess,
    separated,
    wilson,
    z_score,
)
from resilient_http.bench.tune import GridPoint, TuneResult, judge, tune
from resilient_http.bench.tune_table import print_tune
from resilient_http.bench.upstream import InProcessUpstream
from resilient_http.bench.verdict import beats, decide
from resilient_http.testing import MockServer

# --- stats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Table I, method 3 (Wilson score, no continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # 0/n: upper bound z² / (n + z²); n/n: its mirror.
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (95, 100, 0.8882, 0.9785),
    ],
)
def test_wilson_interval_matches_the_literature(k: int, n: int, low: float,
                                                high: float) -> None:
    interval = wilson(k, n)
    assert interval.low == pytest.approx(low, abs=1e-4)
    assert interval.high == pytest.approx(high, abs=1e-4)
    assert interval.estimate == k / n


def test_wilson_edges_and_errors() -> None:
    assert z_score(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert not wilson(0, 0).known
    assert wilson(0, 10, 0.99).high > wilson(0, 10).high  # more confidence, wider
    with pytest.raises(ValueError, match="successes=11, n=10"):
        wilson(11, 10)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        wilson(1, 2, 1.5)


def test_bootstrap_is_deterministic_with_a_seed() -> None:
    rng = random.Random(7)
    values = [rng.expovariate(1.0) for _ in range(2000)]
    a = bootstrap_percentile(values, 99, seed=3)
    assert a == bootstrap_percentile(values, 99, seed=3)
    # the bounds are data points: another seed may land on the same ones, not on all
    assert any(bootstrap_percentile(values, 99, seed=s) != a for s in range(4, 10))
    assert a.low < a.estimate < a.high
    assert a.estimate == sorted(values)[1979]  # nearest rank: the 1,980th of 2,000
    median = bootstrap(values[:200], lambda xs: sorted(xs)[len(xs) // 2], seed=1)
    assert median == bootstrap(values[:200], lambda xs: sorted(xs)[len(xs) // 2], seed=1)
    assert not bootstrap_percentile([], 99).known
    # a p99 of 100 calls is their second largest: nothing bounds it from above
    few = bootstrap_percentile(values[:100], 99)
    assert few.estimate == sorted(values[:100])[98] and few.high == math.inf
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        bootstrap(values, max, resamples=0)


def test_the_fast_percentile_bootstrap_agrees_with_resampling() -> None:
    rng = random.Random(1)
    values = [rng.expovariate(1.0) for _ in range(1000)]

    def p99(xs: Any) -> float:
        ordered = sorted(xs)
        return float(ordered[math.ceil(0.99 * len(ordered)) - 1])

    fast = bootstrap_percentile(values, 99, resamples=2000)
    slow = bootstrap(values, p99, resamples=2000)
    assert fast.estimate == slow.estimate
    # Exp(1)'s p99 is ln(100) = 4.6; the two intervals agree to a few order statistics.
    assert fast.low == pytest.approx(slow.low, rel=0.05)
    assert fast.high == pytest.approx(slow.high, rel=0.05)
    assert fast.low < math.log(100) < fast.high


def test_poisson_excess_and_separation() -> None:
    a = poisson_excess(1270, 1000)
    assert a.estimate == 1.27
    assert a.low == pytest.approx(1.27 - 1.96 * math.sqrt(270) / 1000, abs=1e-4)
    assert poisson_excess(1000, 1000).high > 1.0  # no retry seen is not "never retries"
    good, bad = Interval(0.9, 0.95, 0.99), Interval(0.5, 0.6, 0.7)
    assert separated(good, bad, lower_is_better=False)
    assert not separated(bad, good, lower_is_better=False)
    assert separated(bad, good, lower_is_better=True)
    assert not separated(good, Interval(0.8, 0.85, 0.91), lower_is_better=False)
    assert not separated(good, bad, lower_is_better=False, resolution=0.5)


# --- the decision rule --------------------------------------------------------------------


def _iv(low: float, high: float) -> Interval:
    return Interval(low, (low + high) / 2, high)


def test_first_separating_criterion_decides_overlapping_ones_are_ties() -> None:
    objective = ("success", "amplification", "p99")
    a = {"success": _iv(0.99, 1.0), "amplification": _iv(1.2, 1.3), "p99": _iv(0.1, 0.2)}
    b = {"success": _iv(0.98, 0.995), "amplification": _iv(1.0, 1.05), "p99": _iv(0.3, 0.4)}
    assert beats(b, a, objective) == "amplification"  # success overlaps: a tie
    assert beats(a, b, objective) is None
    c = {"success": _iv(0.7, 0.8), "amplification": _iv(1.0, 1.01), "p99": _iv(0.0, 0.01)}
    assert beats(a, c, objective) == "success"  # decided before the cheaper, faster c
    key = {"a": (0.0,), "b": (1.0,), "c": (2.0,)}
    cost = {"a": 1.25, "b": 1.02, "c": 1.0}
    verdict = decide({"a": a, "b": b, "c": c}, objective, key, cost)
    assert verdict.winner == "b" and verdict.ranking == ("b", "a", "c")
    assert verdict.decided_by == "amplification"
    assert "b wins" in verdict.message and "runner-up a" in verdict.message


def test_no_winner_names_the_leaders_and_the_cheapest_as_a_suggestion() -> None:
    objective = ("success", "p99")
    same = {"success": _iv(0.95, 1.0), "p99": _iv(0.01, 0.02)}
    worse = {"success": _iv(0.5, 0.6), "p99": _iv(0.01, 0.02)}
    verdict = decide({"x": same, "y": dict(same), "z": worse}, objective,
                     {"x": (0.0,), "y": (0.0,), "z": (1.0,)}, {"x": 1.3, "y": 1.1, "z": 1.0})
    assert verdict.winner is None and verdict.leaders == ("x", "y")
    assert verdict.suggestion == "y"  # fewer upstream requests per call
    assert verdict.message.startswith("no significant difference between x and y")
    assert "not a measured win" in verdict.message


# --- tables -------------------------------------------------------------------------------


def _variant() -> Any:
    from resilient_http.bench.metrics import Sample, summarize
    from resilient_http.bench.runner import VariantResult

    samples = [Sample(name, 0, 1000, ok, 0.5, [0.001] * ok + [0.0002] * (1000 - ok),
                      upstream=1270, upstream_429=0, failed=[0.0002] * (1000 - ok))
               for name, ok in (("bare", 780), ("Retry.attempts=4, Timeout#2.seconds=2", 998))]
    scenario = _scenario({}, requests=1000, rounds=1)
    return VariantResult(scenario, 32, "MockServer", samples, summarize(samples), {})


@pytest.mark.parametrize("plain", [True, False])
def test_the_table_fits_100_columns_with_a_legend_and_wide_has_the_rest(plain: bool) -> None:
    if not plain:
        pytest.importorskip("rich")
    out = io.StringIO()
    report.print_variant(_variant(), out, plain=plain)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100, out.getvalue()
    header = next(line for line in lines if "contender" in line)
    assert "ok %" in header and "ok/s" in header and "srv CPU" not in header
    assert header.split()[4:7] == ["ok", "%", "ok/s"]  # ok % and ok/s side by side
    assert any(line.startswith("req/s, ok/s: calls, successful calls per second")
               for line in lines)
    row = next(line for line in lines if line.lstrip().startswith("Retry"))
    assert "99.80" in row and "1,996" in row  # success beside successful calls per second
    wide = io.StringIO()
    report.print_variant(_variant(), wide, plain=plain, wide=True)
    assert "srv CPU %" in wide.getvalue() and "GC/1k: collections" in wide.getvalue()


def test_nines_scale_spreads_97_to_99_8_percent() -> None:
    assert nines(0.9, 1000) == pytest.approx(1.0)
    assert nines(0.97, 1000) == pytest.approx(1.523, abs=1e-3)
    assert nines(0.998, 1000) == pytest.approx(2.699, abs=1e-3)
    assert nines(1.0, 1000) == pytest.approx(3.301, abs=1e-3)  # half a failure in 1,000
    assert nines(0.0, 10) == 0.0


def test_plots_success_panel_failures_apart_and_the_tune_grid(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    variant = _variant()
    paths = report.plot_variant(variant, tmp_path)
    assert [p.name for p in paths] == ["t-c32-latency-cdf.png", "t-c32-throughput.png"]
    names = [s.contender for s in variant.summaries]
    points = [GridPoint(n, {}, None, "rh.Stack()") for n in names]  # type: ignore[arg-type]
    verdict, found = judge(variant.samples, points, ("success", "amplification", "p99"))
    assert verdict.winner == names[1]  # 998/1000 against 780/1000
    result = TuneResult(variant, points, ("success",), list(verdict.ranking), points[1],
                        verdict, found, 1)
    path = plot_tune(result, tmp_path)
    assert path.name == "tune-t.png" and path.read_bytes().startswith(b"\x89PNG")
    out = io.StringIO()
    print_tune(result, out, plain=True)
    text = out.getvalue()
    assert "99.80 [99.27, 99.95]" in text  # Wilson interval of 998/1000 beside ok/s
    assert "1,996" in text and f"{names[1]} *" not in text  # the name wraps within 100
    assert "wins: separated from the runner-up bare on success" in text
    assert max(len(line) for line in text.splitlines()) <= 100


# --- tune on real servers -----------------------------------------------------------------


def _scenario(profile: dict[str, Any], requests: int, rounds: int) -> Any:
    return parse({
        "scenario": {"name": "t", "contenders": ["bare"], "server": "mock"},
        "profile": {"path": "/t", **profile},
        "load": {"requests": requests, "concurrency": 8, "rounds": rounds, "warmup": 0},
        "stacks": {"r": [{"type": "Retry", "attempts": 4}]},
    })


async def test_a_grid_whose_points_do_not_differ_says_so() -> None:
    # No failure: Retry.attempts has nothing to do, the two points are the same stack.
    scenario = _scenario({"latency": 0.002}, requests=40, rounds=2)
    spec = TuneSpec("r", {"Retry.attempts": (1, 4)})
    async with MockServer(record=False) as server:
        result = await tune(scenario, InProcessUpstream(server), "in-process", spec,
                            baseline=False, max_rounds=3)
    verdict = result.verdict
    assert verdict is not None and verdict.winner is None and result.best is None
    assert result.rounds == 3  # the budget was spent looking for a difference
    assert set(verdict.leaders) == {"Retry.attempts=1", "Retry.attempts=4"}
    assert "no significant difference" in verdict.message
    assert verdict.suggestion == "Retry.attempts=1"  # as cheap: the first in the grid
    assert result.code is not None and "rh.Retry(attempts=1)" in result.code
    assert result.variant.summaries[0].calls == 3 * 40
    p99 = result.intervals["Retry.attempts=1"]["p99"]
    data = report.to_json([result.variant], {"p99": list(p99)})
    assert data["p99"][2] is None  # 120 calls do not bound a p99: no Infinity in the JSON
    json.dumps(data, allow_nan=False)


async def test_a_real_difference_picks_the_same_winner_5_runs_out_of_5() -> None:
    # 20 % 503 + 2 % resets: one attempt succeeds ~78 % of the time, four ~99.8 %.
    scenario = _scenario({"error_ratio": 0.2, "reset_ratio": 0.02}, requests=60, rounds=1)
    spec = TuneSpec("r", {"Retry.attempts": (1, 4)})
    winners = []
    async with MockServer(record=False) as server:
        for seed in range(5):
            result = await tune(scenario, InProcessUpstream(server), "in-process", spec,
                                baseline=False, max_rounds=4, seed=seed)
            assert result.verdict is not None
            for s in result.variant.samples:  # failed calls are recorded apart
                assert len(s.failed) == s.calls - s.ok
            winners.append((result.verdict.winner, result.verdict.decided_by))
    assert winners == [("Retry.attempts=4", "success")] * 5
