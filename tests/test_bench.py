"""The benchmark engine: scenario files, counting, ratios, the report, and the tuner's
recommendation on a profile whose best answer is known. No timing assertions: real servers on
loopback, tiny loads."""

from __future__ import annotations

import asyncio
import io
import json
import math
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.bench import cli, report
from resilient_http.bench.contenders import (
    REGISTRY,
    Caller,
    Contender,
    PassThrough,
    build_spec,
    from_specs,
    lookup,
    register,
    render_specs,
)
from resilient_http.bench.metrics import Sample, noise, percentile, summarize, window_stats
from resilient_http.bench.runner import plan, run_variant
from resilient_http.bench.scenario import (
    LayerSpec,
    Profile,
    ScenarioError,
    TuneSpec,
    default_dir,
    discover,
    load,
    parse,
    resolve,
)
from resilient_http.bench.tune import (
    apply_param,
    grid,
    objective_key,
    parse_param,
    rank,
    tune,
)
from resilient_http.bench.upstream import (
    InProcessUpstream,
    NginxUpstream,
    profile_config,
    window_config,
)
from resilient_http.testing import MockServer

REPO = Path(__file__).resolve().parents[1]


def tiny(**overrides: Any) -> dict[str, Any]:
    """A scenario document with a tiny load."""
    doc: dict[str, Any] = {
        "scenario": {"name": "tiny", "contenders": ["bare"], "server": "mock"},
        "profile": {"path": "/t"},
        "load": {"requests": 12, "concurrency": 3, "rounds": 2, "warmup": 2},
    }
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value}
    return doc


# --- scenario files -----------------------------------------------------------------------


def test_the_shipped_scenarios_parse_and_form_the_default_suite() -> None:
    suite = discover(default_dir())
    names = [s.name for s in suite]
    assert names == ["overhead", "cache-hit", "flaky", "latency-tail", "rate-limited",
                     "outage", "outage-window"]
    overhead = suite[0]
    assert overhead.load.concurrency == (1, 64)
    assert overhead.profile.plain
    for scenario in suite:  # every contender named resolves (runnable or not)
        for name in scenario.contenders:
            lookup(name, scenario.stacks)
    flaky = next(s for s in suite if s.name == "flaky")
    assert flaky.profile.error_ratio == 0.2 and flaky.profile.reset_ratio == 0.02
    assert not flaky.profile.plain
    assert flaky.tune is not None and flaky.tune.base in flaky.stacks
    by = {s.name: s for s in suite}
    # the client asks more than the server's 50/s, on an open-loop schedule
    limited = by["rate-limited"]
    assert limited.load.rate is not None and limited.profile.rate_limit is not None
    assert limited.load.rate > limited.profile.rate_limit
    assert by["outage"].profile.outage and by["outage"].profile.window is None
    blip = by["outage-window"]
    assert blip.profile.window is not None and blip.load.rate is not None
    assert not blip.profile.plain


def test_parse_reads_every_table() -> None:
    scenario = parse(
        {
            "scenario": {"name": "x", "description": "d", "order": 3, "default": False,
                         "contenders": ["bare", "mine"]},
            "profile": {"latency": [0.001, 0.002], "error_ratio": 0.1, "rate_limit": 5},
            "load": {"requests": 7, "concurrency": [1, 8], "rounds": 4, "warmup": 0,
                     "rate": 100},
            "settings": {"bare": {}},
            "stacks": {"mine": [{"type": "Timeout", "seconds": 5}]},
            "tune": {"base": "mine", "params": {"Timeout.seconds": [1, 2]},
                     "objective": ["success", "p99"]},
        },
        "x.toml",
    )
    assert scenario.profile.latency == (0.001, 0.002)
    assert scenario.profile.rate_limit == 5.0
    assert scenario.load.concurrency == (1, 8) and scenario.load.rate == 100.0
    assert scenario.stacks["mine"] == (LayerSpec("Timeout", {"seconds": 5}),)
    assert scenario.tune == TuneSpec("mine", {"Timeout.seconds": (1, 2)}, ("success", "p99"))
    assert not scenario.default


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"profile": {"error_ratio": 1.5}}, "profile.error_ratio must be a number between 0"),
        ({"profile": {"latency": "slow"}}, "profile.latency must be"),
        ({"profile": {"path": "/__control/x"}}, "profile.path"),
        ({"profile": {"colour": 1}}, "unknown key(s) in [profile]: colour"),
        ({"load": {"concurrency": [1, 0]}}, "load.concurrency must be"),
        ({"load": {"requests": 0}}, "load.requests must be an integer >= 1"),
        ({"scenario": {"server": "apache"}}, "scenario.server must be one of"),
        ({"scenario": {"contenders": ["bare", "bare"]}}, "lists a name twice"),
        ({"tune": {"base": "x", "objective": ["speed"]}}, "tune.objective must be"),
        ({"profile": {"error_ratio": 0.6, "reset_ratio": 0.6}}, "add up past 1"),
        ({"profile": {"error_ratio": 0.6, "slow_ratio": 0.6}}, "add up past 1"),
        ({"profile": {"slow_ratio": 0.1, "body": "x"}}, "body of 2 bytes"),
        ({"profile": {"outage_start": 1}}, "go together"),
        ({"profile": {"outage_start": 1, "outage_end": 1}, "load": {"rate": 5}},
         "must be after outage_start"),
        ({"profile": {"outage_start": 0, "outage_end": 1}}, "needs an open-loop load.rate"),
        ({"profile": {"outage_start": 0, "outage_end": 3}, "load": {"rate": 4}},
         "before the last arrival (12 calls at 4/s = 3 s)"),
        ({"profile": {"outage_start": 0, "outage_end": 1, "outage": True},
          "load": {"rate": 100}}, "drop it or the window"),
        ({"profile": {"outage_start": -1, "outage_end": 1}}, "profile.outage_start must be"),
        ({"load": {"rate": 0}}, "load.rate must be a number > 0"),
    ],
)
def test_parse_rejects_wrong_values_naming_the_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse(tiny(**doc), "bad.toml")
    assert message in str(info.value)
    assert "bad.toml" in str(info.value)


def test_load_and_resolve_files(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text('[scenario]\nname = "beta"\norder = 2\n')
    (tmp_path / "a.toml").write_text('[scenario]\nname = "alpha"\norder = 1\n')
    (tmp_path / "c.toml").write_text('[scenario]\nname = "gamma"\ndefault = false\n')
    (tmp_path / "broken.txt").write_text("ignored")
    assert [s.name for s in resolve([], tmp_path)] == ["alpha", "beta"]
    assert [s.name for s in resolve(["gamma", "alpha"], tmp_path)] == ["gamma", "alpha"]
    assert load(tmp_path / "c.toml").name == "gamma"
    with pytest.raises(ScenarioError, match=r"no scenario named 'delta'.*alpha, beta, gamma"):
        resolve(["delta"], tmp_path)
    (tmp_path / "d.toml").write_text("[scenario\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        discover(tmp_path)


# --- metrics ------------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))


def _sample(name: str, round_no: int, calls: int, wall: float, **kw: Any) -> Sample:
    return Sample(name, round_no, calls, kw.pop("ok", calls), wall, kw.pop("lat", [0.001]),
                  **kw)


def test_ratios_are_per_round_medians_and_counts_are_totals() -> None:
    samples = [
        _sample("bare", 0, 100, 1.0, upstream=100, upstream_429=0, server_cpu=0.5),
        _sample("x", 0, 100, 2.0, ok=90, upstream=150, upstream_429=15, server_cpu=0.5),
        _sample("bare", 1, 100, 0.5, upstream=100, upstream_429=0, server_cpu=0.5),
        _sample("x", 1, 100, 0.8, ok=100, upstream=110, upstream_429=5, server_cpu=0.5),
        _sample("bare", 2, 100, 0.25, upstream=100, upstream_429=0, server_cpu=0.5),
        _sample("x", 2, 100, 1.0, ok=95, upstream=140, upstream_429=10, server_cpu=0.5),
    ]
    bare, x = summarize(samples)
    assert bare.ratio == 1.0
    # per-round ratios 0.5, 0.625, 0.25 → median 0.5 (not the ratio of medians: 100/200)
    assert x.ratio == pytest.approx(0.5)
    assert x.throughput == pytest.approx(100.0)
    assert x.success == pytest.approx(285 / 300)
    assert x.amplification == pytest.approx(400 / 300)
    assert x.upstream_429 == 30 and x.share_429 == pytest.approx(30 / 400)
    assert x.server_cpu_share == pytest.approx(0.5)


def test_noise_is_how_far_bare_aiohttp_itself_moved_between_rounds() -> None:
    samples = [_sample("bare", r, 100, wall) for r, wall in enumerate((1.0, 0.5, 0.8))]
    samples.append(_sample("x", 0, 100, 0.1))
    # bare: 100, 200 and 125 calls/s → half the range (50) over the median (125)
    assert noise(samples) == pytest.approx(0.4)
    assert noise(samples[1:]) is None  # two rounds of bare say nothing about its spread


def test_unknown_server_counts_stay_unknown() -> None:
    (s,) = summarize([_sample("y", 0, 10, 1.0, statuses=Counter({429: 3, 200: 7}))])
    assert s.ratio is None  # no bare aiohttp in the run
    assert s.amplification is None and s.share_429 is None and s.server_cpu_share is None
    assert s.client_429 == 3


def test_an_outage_window_parses_in_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = parse(tiny(profile={"outage_start": 0, "outage_end": 0.5},
                          load={"rate": 12}))
    assert scenario.profile.window == (0.0, 0.5)
    assert not scenario.profile.plain
    assert Profile().window is None
    with pytest.raises(ScenarioError, match="before the last arrival"):
        replace(scenario, load=replace(scenario.load, requests=3))  # as --requests 3 does
    assert cli.main(["bench", "outage-window", "--requests", "10", "--dir",
                     str(default_dir())]) == 2
    assert "before the last arrival" in capsys.readouterr().err


def test_arrivals_from_open_loop_samples() -> None:
    on_time = _sample("a", 0, 100, 1.0, rate=100.0, last_start=0.99)
    assert on_time.achieved_rate == pytest.approx(100.0)  # every call started on schedule
    behind = _sample("a", 1, 100, 3.0, rate=100.0, late=50, max_lag=1.5, last_start=1.99)
    assert behind.achieved_rate == pytest.approx(50.0)
    (s,) = summarize([on_time, behind])
    assert s.arrivals is not None
    assert s.arrivals.offered == 100.0 and s.arrivals.achieved == pytest.approx(75.0)
    assert s.arrivals.late == 50 and s.arrivals.late_share == pytest.approx(0.25)
    assert s.arrivals.max_lag == 1.5 and not s.arrivals.on_schedule
    (s,) = summarize([_sample("b", 0, 200, 1.0, rate=200.0, late=2, last_start=0.995)])
    assert s.arrivals is not None and s.arrivals.on_schedule  # 1 % late: still on schedule
    (s,) = summarize([_sample("c", 0, 10, 1.0)])
    assert s.arrivals is None and s.window is None  # a closed loop, no window
    assert math.isnan(_sample("c", 0, 10, 1.0).achieved_rate)


def test_window_stats_split_calls_by_start_time() -> None:
    window = (1.0, 2.0)
    first = [  # (start, end, ok)
        (0.0, 0.01, True), (0.5, 0.51, True),                      # before: 2/2
        (1.0, 1.01, False), (1.5, 2.3, True), (1.9, 1.95, False),  # during: 1/3
        (2.0, 2.01, False), (2.4, 2.5, True), (2.6, 2.61, True),   # after: first ok 0.5 s
        (3.5, 3.51, True),                                         # after, past 1 s
    ]
    second = [(0.1, 0.2, True), (1.2, 1.3, False), (2.2, 2.25, True)]  # back after 0.25 s
    samples = [
        _sample("x", 0, 9, 4.0, timeline=first, window=window, upstream_during=6),
        _sample("x", 1, 3, 4.0, timeline=second, window=window, upstream_during=2),
    ]
    (s,) = summarize(samples)
    w = s.window
    assert w is not None and (w.start, w.end) == window
    assert w.ok_before == 1.0
    assert w.ok_during == pytest.approx(1 / 4) and w.calls_during == 4
    assert w.ok_after == pytest.approx(4 / 5)
    assert w.amplification_during == pytest.approx(8 / 4)
    assert w.recovery == pytest.approx((0.5 + 0.25) / 2)  # median of the two rounds
    assert w.ok_first_second == pytest.approx(3 / 4)
    never = window_stats([_sample("y", 0, 1, 1.0, timeline=[(2.5, 2.6, False)],
                                  window=window)])
    assert never is not None and never.recovery is None and never.ok_before is None
    assert never.amplification_during is None  # the server could not tell


# --- contenders ---------------------------------------------------------------------------


def test_missing_layers_and_peers_are_reasons_not_errors() -> None:
    async def never(url: str) -> int:  # pragma: no cover - never built
        return 200

    def factory(settings: Mapping[str, Any]) -> Any:  # pragma: no cover - never built
        raise AssertionError

    assert Contender("a", "a", factory, layers=("NoSuchLayer",)).missing() == (
        "layer NoSuchLayer not available yet"
    )
    reason = Contender("b", "b", factory, modules=("no_such_peer_module",)).missing()
    assert reason is not None and "no_such_peer_module not installed" in reason
    assert REGISTRY["bare"].missing() is None
    assert REGISTRY["timeout"].missing() is None
    with pytest.raises(KeyError, match="unknown contender 'nope'"):
        lookup("nope")


def test_plan_skips_what_is_not_here() -> None:
    scenario = parse(tiny(scenario={"contenders": ["bare", "ghost"]},
                          stacks={"ghost": [{"type": "NoSuchLayer"}]}))
    entries, skipped = plan(scenario)
    assert [e.key for e in entries] == ["bare"]
    assert skipped == [("ghost", "layer NoSuchLayer not available yet")]
    entries, skipped = plan(scenario, only=["bare"])
    assert [e.key for e in entries] == ["bare"] and skipped == []
    early = parse(tiny(scenario={"contenders": ["standard", "timeout"]},
                       settings={"standard": {"not_an_option_yet": 1},
                                 "timeout": {"seconds": 5}}))
    entries, skipped = plan(early)
    assert [e.key for e in entries] == ["timeout"]
    assert skipped == [("standard", "standard() takes no not_an_option_yet option yet")]


def test_stacks_as_data_build_and_render() -> None:
    specs = (LayerSpec("Timeout", {"seconds": 30}), LayerSpec("Timeout", {"seconds": 2.5}))
    stack = build_spec(specs[0])
    assert isinstance(stack, rh.Timeout) and stack.seconds == 30
    code = render_specs(specs)
    assert code == "rh.Stack(rh.Timeout(seconds=30), rh.Timeout(seconds=2.5))"
    rebuilt = eval(code, {"rh": rh})
    assert [t.seconds for t in rebuilt.layers] == [30, 2.5]
    c = from_specs("two", specs)
    assert c.layers == ("Timeout",) and c.missing() is None
    assert from_specs("x", (LayerSpec("NoSuchLayer"),)).missing() == (
        "layer NoSuchLayer not available yet"
    )
    assert type(PassThrough()).enter is not rh.Layer.enter  # the engine must not skip it


# --- end to end, in process ---------------------------------------------------------------


@asynccontextmanager
async def _double(settings: Mapping[str, Any]) -> AsyncIterator[Caller]:
    """A contender making two upstream requests per logical call."""
    async with aiohttp.ClientSession() as session:

        async def call(url: str) -> int:
            for _ in range(2):
                async with session.get(url) as resp:
                    await resp.read()
            return resp.status

        yield call


@pytest.fixture
def double() -> Any:
    contender = register(Contender("double", "two requests per call", _double))
    yield contender
    del REGISTRY["double"]


async def test_counting_and_ratios_end_to_end(double: Contender) -> None:
    scenario = parse(tiny(scenario={"contenders": ["bare", "double", "stack5"]}))
    entries, skipped = plan(scenario)
    assert not skipped
    async with MockServer(record=False) as server:
        result = await run_variant(scenario, entries, InProcessUpstream(server), "in-process", 3)
    # interleaved, the order rotated each round so no contender always runs in one position
    order = [s.contender for s in result.samples]
    assert order == ["bare", "double", "stack5", "double", "stack5", "bare"]
    for s in result.samples:  # warm-up calls are not counted
        assert s.calls == 12 and s.ok == 12 and len(s.latencies) == 12
        assert s.statuses == Counter({200: 12})
        assert s.upstream == (24 if s.contender == "double" else 12)
        assert s.upstream_429 == 0 and s.server_cpu is None
    by = {s.contender: s for s in result.summaries}
    assert by["bare"].ratio == 1.0
    assert by["double"].amplification == 2.0 and by["bare"].amplification == 1.0
    for name in ("double", "stack5"):
        per_round = sorted(
            x.throughput / b.throughput
            for x in result.samples if x.contender == name
            for b in result.samples if b.contender == "bare" and b.round == x.round
        )
        assert by[name].ratio == pytest.approx(sum(per_round) / 2)  # median of two
    assert by["stack5"].success == 1.0 and by["stack5"].calls == 24


async def test_failures_and_429s_are_counted_from_the_server() -> None:
    outage = parse(tiny(profile={"outage": True}, load={"warmup": 0, "rounds": 1}))
    limited = parse(tiny(profile={"rate_limit": 4, "rate_burst": 4},
                         load={"warmup": 0, "rounds": 1, "concurrency": 1}))
    async with MockServer(record=False) as server:
        up = InProcessUpstream(server)
        down = await run_variant(outage, plan(outage)[0], up, "in-process", 3)
        capped = await run_variant(limited, plan(limited)[0], up, "in-process", 1)
    (s,) = down.summaries
    assert s.success == 0.0 and s.statuses == {503: 12} and s.amplification == 1.0
    (s,) = capped.summaries
    # a 4-deep bucket refilling at 4/s: 12 back-to-back calls get 4 (or 5) through
    assert s.upstream_429 == s.client_429 and 7 <= s.client_429 <= 8
    assert s.success == pytest.approx(1 - s.client_429 / 12)
    assert s.share_429 == pytest.approx(s.client_429 / 12)


async def test_an_outage_window_end_to_end() -> None:
    # 60 calls at 100/s: the route is down from 0.15 s to 0.45 s of the measured load.
    scenario = parse(tiny(
        scenario={"contenders": ["bare", "retry"]},
        profile={"outage_start": 0.15, "outage_end": 0.45, "error_status": 502},
        load={"requests": 60, "rate": 100, "concurrency": 8, "rounds": 1, "warmup": 3},
    ))
    async with MockServer(record=False) as server:
        result = await run_variant(scenario, plan(scenario)[0], InProcessUpstream(server),
                                   "in-process", 8)
    for sample in result.samples:
        assert sample.timeline is not None and len(sample.timeline) == 60
        assert sample.window == (0.15, 0.45) and sample.rate == 100.0
    bare = next(s for s in result.samples if s.contender == "bare")
    # every 502 the client saw is a request the server counted in its window (warm-up
    # calls ran before it was armed, on the healthy route)
    assert bare.upstream_during == bare.statuses[502] > 0
    assert bare.statuses[200] + bare.statuses[502] == 60 == bare.upstream
    by = {s.contender: s for s in result.summaries}
    w = by["bare"].window
    assert w is not None and w.calls_during > 0
    assert w.amplification_during == pytest.approx(bare.statuses[502] / w.calls_during)
    # the server was armed before the first call: a call started after the end meets a
    # healthy route
    assert w.ok_after == 1.0 and w.ok_first_second == 1.0
    assert w.recovery is not None and w.recovery >= 0
    retry = by["retry"].window
    assert retry is not None and retry.amplification_during is not None
    out = io.StringIO()
    report.print_variant(result, out, plain=True)
    text = out.getvalue()
    assert "tiny · 8 in flight: outage window 0.15-0.45 s" in text
    assert "tiny · 8 in flight: arrivals" in text
    assert "arriving at 100/s (open loop)" in text


async def test_open_loop_counts_calls_that_wait_for_a_caller() -> None:
    # One caller, a call due every millisecond, each taking at least 20 ms on the server:
    # every call after the first waits for the caller.
    scenario = parse(tiny(
        profile={"latency": 0.02},
        load={"requests": 5, "rate": 1000, "concurrency": 1, "rounds": 1, "warmup": 0},
    ))
    async with MockServer(record=False) as server:
        result = await run_variant(scenario, plan(scenario)[0], InProcessUpstream(server),
                                   "in-process", 1)
    (sample,) = result.samples
    assert sample.late >= 4  # the first is late only if the loop stalled
    assert sample.max_lag >= 4 * 0.02 - 0.004  # the last waited for four 20 ms calls
    (s,) = result.summaries
    assert s.arrivals is not None and not s.arrivals.on_schedule
    assert s.arrivals.achieved < 1000 / 2


async def test_tune_recommends_the_only_timeout_that_lets_calls_through() -> None:
    scenario = parse(tiny(
        profile={"latency": 0.02},
        load={"requests": 6, "concurrency": 3, "rounds": 1, "warmup": 0},
        stacks={"t": [{"type": "Timeout", "seconds": 1}]},
    ))
    spec = TuneSpec("t", {"Timeout.seconds": (0.002, 2.0, 0.01)})
    async with MockServer(record=False) as server:
        result = await tune(scenario, InProcessUpstream(server), "in-process", spec)
    by = {s.contender: s for s in result.variant.summaries}
    assert set(by) == {"bare", "Timeout.seconds=0.002", "Timeout.seconds=2.0",
                       "Timeout.seconds=0.01"}
    assert by["Timeout.seconds=0.002"].success == 0.0
    assert by["Timeout.seconds=0.002"].errors == {"DeadlineExceeded": 6}
    assert by["Timeout.seconds=2.0"].success == 1.0
    assert result.ranking[0] == "Timeout.seconds=2.0"
    assert result.best is not None and result.best.values == {"Timeout.seconds": 2.0}
    code = result.code
    assert code is not None and "rh.Stack(rh.Timeout(seconds=2.0))" in code
    compile(code, "<recommendation>", "exec")


async def test_tune_a_registry_contender_by_its_keywords() -> None:
    scenario = parse(tiny(load={"requests": 2, "concurrency": 1, "rounds": 1, "warmup": 0}))
    spec = TuneSpec("standard", {"attempt_timeout": (1.0, 5.0)}, ("success", "cpu"))
    async with MockServer(record=False) as server:
        result = await tune(scenario, InProcessUpstream(server), "in-process", spec,
                            baseline=False)
    assert [p.code for p in result.points] == [
        "rh.standard(attempt_timeout=1.0)", "rh.standard(attempt_timeout=5.0)"
    ]
    assert {s.contender for s in result.variant.summaries} == {
        "attempt_timeout=1.0", "attempt_timeout=5.0"
    }


# --- tune: pure parts ---------------------------------------------------------------------


def test_params_grid_and_addressing() -> None:
    assert parse_param("Retry.attempts=2,3, 4") == ("Retry.attempts", (2, 3, 4))
    assert parse_param("x=0.5,true,none,fast") == ("x", (0.5, True, None, "fast"))
    with pytest.raises(ValueError, match="NAME=v1,v2"):
        parse_param("Retry.attempts")
    assert grid({"a": (1, 2), "b": ("x", "y")}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}
    ]
    specs = (LayerSpec("Timeout", {"seconds": 30}), LayerSpec("Timeout", {"seconds": 5}))
    assert apply_param(specs, "Timeout#2.seconds", 1)[1].kwargs == {"seconds": 1}
    assert apply_param(specs, "Timeout.seconds", 9)[0].kwargs == {"seconds": 9}
    with pytest.raises(ValueError, match="no layer Retry #1"):
        apply_param(specs, "Retry.attempts", 3)
    with pytest.raises(ValueError, match=r"Layer\.argument"):
        apply_param(specs, "seconds", 3)


def test_objective_orders_success_then_amplification_then_p99() -> None:
    def summary(name: str, ok: int, upstream: int, p99: float) -> Any:
        (s,) = summarize([_sample(name, 0, 1000, 1.0, ok=ok, upstream=upstream,
                                  lat=[0.001] * 98 + [p99] * 2)])
        return s

    a = summary("a", 999, 1300, 0.010)  # best success
    b = summary("b", 990, 1100, 0.001)
    c = summary("c", 999, 1250, 0.200)  # same success, less amplification: wins
    d = summary("d", 999, 1250, 0.100)  # ... and a lower p99: wins over c
    objective = ("success", "amplification", "p99")
    assert rank([a, b, c, d], objective, ["a", "b", "c", "d"]) == ["d", "c", "a", "b"]
    assert objective_key(a, ("p99",)) < objective_key(c, ("p99",))


# --- report -------------------------------------------------------------------------------


def _result() -> Any:
    from resilient_http.bench.runner import VariantResult

    scenario = parse(tiny())
    samples = [_sample("bare", 0, 10, 0.01, upstream=10, upstream_429=0),
               _sample("x", 0, 10, 0.02, ok=9, upstream=12, upstream_429=1,
                       statuses=Counter({200: 9, 503: 1}))]
    return VariantResult(scenario, 3, "MockServer", samples, summarize(samples),
                         {"bare": "bare", "x": "x"}, [("ghost", "layer Ghost not available yet")])


def test_plain_table_and_json() -> None:
    out = io.StringIO()
    report.print_variant(_result(), out, plain=True, wide=True)
    text = out.getvalue()
    assert "tiny · 3 in flight" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("contender"))
    for col in ("req/s", "x bare", "p99 ms", "up/call", "429 %", "srv CPU %"):
        assert col in header
    row = next(line for line in lines if line.startswith("x "))
    # ratio, ok/s, ok %, up/call
    assert "0.50" in row and "450" in row and "90.00" in row and "1.20" in row
    assert "skipped: ghost: layer Ghost not available yet" in text
    data = report.to_json([_result()], {"extra": 1})
    json.dumps(data, allow_nan=False)
    (variant,) = data["variants"]
    assert variant["summaries"][1]["ratio"] == 0.5 and data["extra"] == 1


def test_markdown_table() -> None:
    out = io.StringIO()
    report.print_variant(_result(), out, markdown=True)
    lines = out.getvalue().splitlines()
    assert "**tiny · 3 in flight**" in lines
    header = next(line for line in lines if line.startswith("| contender"))
    assert header.count("|") == len(report.NARROW) + 1
    assert any(line.startswith("| x | ") and "| 0.50 |" in line for line in lines)


def test_rich_table_when_rich_is_installed() -> None:
    pytest.importorskip("rich")
    out = io.StringIO()
    report.print_variant(_result(), out, plain=False)
    assert "x bare" in out.getvalue() and "0.50" in out.getvalue()


def test_plots_when_matplotlib_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = report.plot_variant(_result(), tmp_path)
    assert [p.name for p in paths] == ["tiny-c3-latency-cdf.png", "tiny-c3-throughput.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    from resilient_http.bench.runner import VariantResult

    scenario = parse(tiny(profile={"outage_start": 0.05, "outage_end": 0.1},
                          load={"rate": 100}))
    timeline = [(k / 100, k / 100 + 0.001, not 0.05 <= k / 100 < 0.1) for k in range(12)]
    samples = [_sample("bare", 0, 12, 0.12, timeline=timeline, window=(0.05, 0.1),
                       rate=100.0, last_start=0.11)]
    result = VariantResult(scenario, 3, "MockServer", samples, summarize(samples), {})
    paths = report.plot_variant(result, tmp_path)
    assert paths[-1].name == "tiny-c3-outage-window.png"
    assert paths[-1].read_bytes().startswith(b"\x89PNG")


# --- servers ------------------------------------------------------------------------------


def test_profile_config_is_a_mockserver_document() -> None:
    doc = profile_config(Profile(path="/f", error_ratio=0.2, reset_ratio=0.02, rate_limit=50))
    (route,) = doc["routes"]
    assert doc["reset"] is True
    assert route["random_faults"]["error_ratio"] == 0.2
    assert route["rate_limited"] == {"rate": 50, "burst": None}
    assert "cacheable" in profile_config(Profile(cache_control="max-age=5"))["routes"][0]
    slow = profile_config(Profile(slow_ratio=0.1, slow_body=0.5))["routes"][0]
    assert slow["random_faults"]["slow_ratio"] == 0.1
    assert slow["random_faults"]["slow_body"] == 0.5
    assert not Profile(slow_ratio=0.1).plain
    assert window_config(Profile()) is None
    windowed = Profile(path="/w", latency=(0.001, 0.003), outage_start=1, outage_end=2)
    assert window_config(windowed) == {"routes": [{"path": "/w", "outage": {
        "start": 1, "end": 2, "status": 503, "delay": 0.002}}]}
    (route,) = profile_config(windowed)["routes"]
    assert "outage" not in route  # armed by the runner when the measured calls start


async def test_a_latency_tail_profile_delays_its_share_of_replies() -> None:
    tail = {"latency": 0.001, "tail_ratio": 0.5, "tail_latency": 0.2}
    scenario = parse({"scenario": {"name": "t"}, "profile": tail})
    assert scenario.profile.tail_latency == 0.2 and not scenario.profile.plain
    with pytest.raises(ScenarioError, match=r"profile\.tail_latency must be"):
        parse({"scenario": {"name": "t"}, "profile": {"tail_latency": [1, 0.5]}})
    async with MockServer() as server:
        server.configure(profile_config(replace(scenario.profile, path="/t")))
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as s:

            async def timed() -> float:
                start = loop.time()
                async with s.get(server.url("/t")) as resp:
                    await resp.read()
                return loop.time() - start

            took = await asyncio.gather(*(timed() for _ in range(20)))
    slow = sum(t >= 0.2 for t in took)
    assert 3 <= slow <= 17  # seeded: about half, never all or none


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
async def test_nginx_counts_its_requests() -> None:
    nginx = NginxUpstream(shutil.which("nginx") or "nginx")
    await nginx.start()
    try:
        await nginx.prepare(Profile())
        before = await nginx.stats("/ok")
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                async with session.get(nginx.url("/ok")) as resp:
                    assert await resp.text() == "ok"
        after = await nginx.stats("/ok")
        assert after.count is not None and before.count is not None
        assert after.count - before.count == 5
        with pytest.raises(ValueError, match="plain"):
            await nginx.prepare(Profile(outage=True))
    finally:
        await nginx.close()
    cached = NginxUpstream(shutil.which("nginx") or "nginx", cache_control="max-age=60")
    await cached.start()
    try:
        await cached.prepare(Profile(cache_control="max-age=60"))
        async with aiohttp.ClientSession() as session, session.get(cached.url("/c")) as resp:
            assert resp.headers["Cache-Control"] == "max-age=60"
            assert resp.headers["ETag"] == '"bench-v1"'
    finally:
        await cached.close()


# --- the command line ---------------------------------------------------------------------


def test_cli_list_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.toml").write_text('[scenario]\nname = "alpha"\ndescription = "first"\n')
    assert cli.main(["bench", "--list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "first" in out and "stack5" in out
    assert cli.main(["bench", "nope", "--dir", str(tmp_path)]) == 2
    assert "no scenario named 'nope'" in capsys.readouterr().err
    assert cli.main(["tune", "alpha", "--dir", str(tmp_path)]) == 2
    assert "no [tune] table" in capsys.readouterr().err


def test_cli_bench_runs_a_tiny_scenario_against_the_server_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.toml").write_text(
        '[scenario]\nname = "t"\nserver = "mock"\ncontenders = ["bare", "mw1", "ghost"]\n'
        '[profile]\nerror_ratio = 0.5\n[load]\nrequests = 6\nconcurrency = 2\nrounds = 1\n'
        'warmup = 0\n[stacks]\nghost = [{type = "NoSuchLayer"}]\n'
    )
    out_json = tmp_path / "r.json"
    code = cli.main(["bench", "t", "--dir", str(tmp_path), "--plain", "--quiet",
                     "--json", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    assert "server: MockServer (own process)" in text
    assert "skipped: ghost: layer NoSuchLayer not available yet" in text
    data = json.loads(out_json.read_text())
    bare = data["variants"][0]["summaries"][0]
    assert bare["contender"] == "bare" and bare["calls"] == 6
    assert bare["amplification"] == 1.0  # counted by the server process itself
    assert bare["server_cpu_share"] is not None


def test_cli_tune_prints_the_recommendation_with_json_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "slow.toml").write_text(
        '[scenario]\nname = "slow"\nserver = "mock"\n[profile]\nlatency = 0.02\n'
        '[load]\nrequests = 6\nconcurrency = 3\nrounds = 1\nwarmup = 0\n'
        '[stacks]\nt = [{type = "Timeout", seconds = 1}]\n'
    )
    out_json, plots = tmp_path / "tune.json", tmp_path / "plots"
    code = cli.main(["tune", "slow", "--dir", str(tmp_path), "--base", "t",
                     "--param", "Timeout.seconds=0.002,2", "--plain", "--quiet",
                     "--json", str(out_json), "--plot", str(plots)])
    assert code == 0
    text = capsys.readouterr().out
    assert "recommended stack:" in text
    assert "middlewares = (rh.Stack(rh.Timeout(seconds=2)),)" in text
    data = json.loads(out_json.read_text())
    assert data["tune"]["ranking"][0] == "Timeout.seconds=2"
    assert "rh.Timeout(seconds=2)" in data["tune"]["recommended"]
    assert sorted(p.name for p in plots.iterdir()) == [
        "slow-c3-latency-cdf.png", "slow-c3-throughput.png", "tune-slow.png"
    ]
