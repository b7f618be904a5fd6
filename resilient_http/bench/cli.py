"""The ``resilient-http`` command: ``bench`` and ``tune``.

::

    resilient-http bench                          # the default suite of the shipped scenarios
    resilient-http bench flaky outage --json out.json --plot plots/
    resilient-http bench overhead --contenders bare,mw1,stack5 --rounds 7
    resilient-http tune flaky --param Retry.attempts=2,3,4 --param Timeout#2.seconds=0.5,2
    resilient-http bench --list                   # scenarios and contenders known here
    resilient-http bench --instructions           # instructions per request (callgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resilient_http.bench import instructions, report
from resilient_http.bench.contenders import REGISTRY
from resilient_http.bench.plots import plot_tune
from resilient_http.bench.runner import VariantResult, plan, run_variant
from resilient_http.bench.scenario import (
    OBJECTIVES,
    Scenario,
    ScenarioError,
    TuneSpec,
    default_dir,
    discover,
    resolve,
)
from resilient_http.bench.tune import (
    MAX_ROUNDS,
    MAX_SECONDS,
    TuneResult,
    parse_param,
    tune,
)
from resilient_http.bench.tune_table import print_tune
from resilient_http.bench.upstream import Upstreams

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["main"]


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="a directory of scenario files (default: the shipped ones)")
    p.add_argument("--rounds", type=_positive, help="override the scenarios' rounds")
    p.add_argument("--requests", type=_positive,
                   help="override the calls per contender per round")
    p.add_argument("--concurrency", type=_csv_ints, help="override concurrency, e.g. 1,64")
    p.add_argument("--server", choices=("auto", "mock", "nginx"), default="auto",
                   help="auto: nginx for plain always-200 profiles when installed, else the "
                        "MockServer process (default)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots (matplotlib)")
    p.add_argument("--plain", action="store_true", help="plain-text table even with rich")
    p.add_argument("--markdown", action="store_true", help="Markdown tables (for a README)")
    p.add_argument("--wide", action="store_true",
                   help="every column (p95, max, GC, server CPU); the default fits 100 columns")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilient-http",
        description="Benchmark resilient_http against bare aiohttp and its peers, and tune "
                    "its settings against a server profile.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="run scenarios and print a table per scenario")
    bench.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                       help="names (or .toml paths); none = the default suite")
    bench.add_argument("--contenders", help="only these contenders, comma-separated")
    bench.add_argument("--list", action="store_true", help="list scenarios and contenders")
    bench.add_argument("--instructions", action="store_true",
                       help="CPU instructions per request under callgrind (needs valgrind) "
                            "for our layers and their peers: --contenders picks rows, "
                            "--requests sets N (default 512)")
    _common(bench)
    tune_p = sub.add_parser("tune", help="run a grid of settings on a profile, recommend one")
    tune_p.add_argument("profile", metavar="PROFILE", help="a scenario name or .toml path")
    tune_p.add_argument("--param", action="append", default=[], metavar="NAME=v1,v2",
                        help="a grid axis: Layer.argument (Layer#2.argument for the second "
                             "layer of a type) for a stack, or a factory keyword; repeatable")
    tune_p.add_argument("--base", help="the contender to tune (default: the profile's [tune] "
                                       "base)")
    tune_p.add_argument("--objective",
                        help=f"criteria, best first, from {','.join(OBJECTIVES)} "
                             "(default success,amplification,p99)")
    tune_p.add_argument("--max-rounds", type=_positive, default=MAX_ROUNDS,
                        help="more rounds until a point is separated from the others, up to "
                             f"this many in all (default {MAX_ROUNDS})")
    tune_p.add_argument("--max-time", type=float, default=MAX_SECONDS, metavar="SECONDS",
                        help="no new round after this many seconds (default "
                             f"{MAX_SECONDS:g})")
    _common(tune_p)
    return parser


def _override(s: Scenario, args: argparse.Namespace) -> Scenario:
    load = s.load
    if args.rounds:
        load = replace(load, rounds=args.rounds)
    if args.requests:
        load = replace(load, requests=args.requests, warmup=min(load.warmup, args.requests))
    if args.concurrency:
        load = replace(load, concurrency=args.concurrency)
    return replace(s, load=load)


def _list(directory: Path | Traversable) -> None:
    print(f"scenarios in {directory}:")
    for s in discover(directory):
        flag = "" if s.default else "  (not in the default suite)"
        print(f"  {s.name:<16} {s.description}{flag}")
    print("contenders:")
    for name, c in REGISTRY.items():
        reason = c.missing()
        print(f"  {name:<22} {c.label}" + (f"  [unavailable: {reason}]" if reason else ""))


async def _bench(args: argparse.Namespace, scenarios: list[Scenario]) -> list[VariantResult]:
    only = [c.strip() for c in args.contenders.split(",")] if args.contenders else None
    upstreams = Upstreams(args.server)
    results: list[VariantResult] = []
    try:
        for scenario in scenarios:
            entries, skipped = plan(scenario, only)
            if not entries:
                print(f"\n{scenario.name}: nothing to run", file=sys.stdout)
                for name, reason in skipped:
                    print(f"skipped: {name}: {reason}")
                continue
            upstream, server = await upstreams.for_scenario(scenario)
            for concurrency in scenario.load.concurrency:
                result = await run_variant(
                    scenario, entries, upstream, server, concurrency,
                    progress=report.make_progress(not args.quiet), skipped=skipped,
                )
                report.print_variant(result, plain=args.plain or None, markdown=args.markdown,
                                     wide=args.wide)
                sys.stdout.flush()
                results.append(result)
    finally:
        await upstreams.close()
    return results


async def _tune(args: argparse.Namespace, scenario: Scenario) -> TuneResult:
    spec = scenario.tune
    base = args.base or (spec.base if spec else None)
    if base is None:
        raise ValueError(f"{scenario.name} has no [tune] table: give --base and --param")
    params: dict[str, tuple[Any, ...]] = {}
    if args.param:
        for text in args.param:
            name, values = parse_param(text)
            params[name] = values
    elif spec is not None and base == spec.base:
        params = dict(spec.params)
    objective = (
        tuple(o.strip() for o in args.objective.split(","))
        if args.objective
        else (spec.objective if spec else ("success", "amplification", "p99"))
    )
    bad = [o for o in objective if o not in OBJECTIVES]
    if bad:
        raise ValueError(f"unknown objective {', '.join(bad)}; known: {', '.join(OBJECTIVES)}")
    upstreams = Upstreams(args.server)
    try:
        upstream, server = await upstreams.for_scenario(scenario)
        return await tune(
            scenario, upstream, server, TuneSpec(base, params, objective),
            progress=report.make_progress(not args.quiet), max_rounds=args.max_rounds,
            max_seconds=args.max_time,
        )
    finally:
        await upstreams.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``resilient-http`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    directory = args.dir or default_dir()
    started = time.perf_counter()
    try:
        if args.command == "bench" and args.list:
            _list(directory)
            return 0
        if args.command == "bench" and args.instructions:
            names = ([c.strip() for c in args.contenders.split(",")] if args.contenders
                     else list(instructions.DEFAULT))
            return instructions.run(names, args.requests or 512)
        if args.plot is not None:
            report.pyplot()  # fail before measuring, not after
        info = report.machine()
        print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
              f"aiohttp {info['aiohttp']}")
        if args.command == "bench":
            scenarios = [_override(s, args) for s in resolve(args.scenarios, directory)]
            results = asyncio.run(_bench(args, scenarios))
            extra: dict[str, Any] = {}
            plots: list[Path] = []
            if args.plot is not None:
                for r in results:
                    plots += report.plot_variant(r, args.plot)
        else:
            scenario = _override(resolve([args.profile], directory)[0], args)
            outcome = asyncio.run(_tune(args, scenario))
            results = [outcome.variant]
            report.print_variant(outcome.variant, plain=args.plain or None,
                                 markdown=args.markdown, wide=args.wide)
            print_tune(outcome, plain=args.plain or None, markdown=args.markdown)
            if outcome.code:
                print("\nrecommended stack:\n" if outcome.best else
                      "\ndefault suggestion (no measured win):\n")
                print(outcome.code)
            extra = {
                "tune": {
                    "base": args.base or (scenario.tune.base if scenario.tune else None),
                    "objective": list(outcome.objective),
                    "ranking": outcome.ranking,
                    "rounds": outcome.rounds,
                    "winner": outcome.verdict.winner if outcome.verdict else None,
                    "verdict": outcome.verdict.message if outcome.verdict else None,
                    "intervals": {name: {c: list(iv) for c, iv in found.items()}
                                  for name, found in outcome.intervals.items()},
                    "points": [{"name": p.name, "values": dict(p.values), "code": p.code}
                               for p in outcome.points],
                    "recommended": outcome.code,
                }
            }
            plots = []
            if args.plot is not None:
                plots = [*report.plot_variant(outcome.variant, args.plot),
                         plot_tune(outcome, args.plot)]
        if args.json is not None:
            path = report.write_json(args.json, report.to_json(results, extra))
            print(f"JSON: {path}")
        for p in plots:
            print(f"plot: {p}")
        print(f"done in {time.perf_counter() - started:.0f} s")
        return 0
    except report.MissingOptional as exc:
        print(f"resilient-http: {exc}", file=sys.stderr)
        return 2
    except (ScenarioError, KeyError, LookupError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"resilient-http: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resilient-http: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
