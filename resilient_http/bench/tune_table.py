"""The tuner's own table: each grid point's intervals, and the verdict under it."""

from __future__ import annotations

import math
import sys
import textwrap
from typing import IO

from resilient_http.bench.report import WIDTH, printer
from resilient_http.bench.stats import Interval
from resilient_http.bench.tune import TuneResult

__all__ = ["TUNE_COLUMNS", "print_tune", "tune_rows"]

TUNE_COLUMNS = ("point", "ok % [95% CI]", "ok/s", "up/call [95% CI]", "p99 ms [95% CI]",
                "beats")
"""The tune table: success rate with its Wilson interval; successful calls per second
(median over rounds); upstream requests per call with its interval; p99 latency with its
bootstrap interval (``?`` above: too few calls to bound it); how many other points this one
is separated from."""

LEGEND = ("[a, b] = 95 % confidence interval; ok/s = successful calls per second; beats = "
          "points this one is separated from (first criterion whose intervals do not overlap)")


def _fmt(iv: Interval | None, spec: str, scale: float = 1.0) -> str:
    if iv is None or not iv.known:
        return "-"

    def one(x: float) -> str:
        return "?" if math.isinf(x) else format(x * scale, spec)

    return f"{one(iv.estimate)} [{one(iv.low)}, {one(iv.high)}]"


def tune_rows(result: TuneResult) -> list[list[str]]:
    """The tune table's cells, best first (see :data:`TUNE_COLUMNS`)."""
    from resilient_http.bench.verdict import beats

    by_name = {s.contender: s for s in result.variant.summaries}
    rows: list[list[str]] = []
    for name in result.ranking:
        found = result.intervals.get(name, {})
        wins = sum(1 for other in result.ranking if other != name
                   and beats(found, result.intervals[other], result.objective))
        goodput = by_name[name].goodput if name in by_name else math.nan
        rows.append([
            name + (" *" if result.best and name == result.best.name else ""),
            _fmt(found.get("success"), ".2f", 100),
            format(goodput, ",.0f") if not math.isnan(goodput) else "-",
            _fmt(found.get("amplification"), ".2f"),
            _fmt(found.get("p99"), ".1f", 1e3),
            f"{wins}/{len(result.ranking) - 1}",
        ])
    return rows


def print_tune(result: TuneResult, out: IO[str] | None = None, plain: bool | None = None,
               markdown: bool = False) -> None:
    """Print the tune table, a legend and the verdict (``*`` marks the winner)."""
    verdict = result.verdict.message if result.verdict else ""
    lines = (f"objective: {' > '.join(result.objective)}; {result.rounds} rounds", LEGEND,
             verdict)
    caption = "\n".join(textwrap.fill(line, WIDTH) for line in lines)
    printer(plain, markdown)(f"tune {result.variant.scenario.name}", TUNE_COLUMNS,
                             tune_rows(result), caption, out or sys.stdout)
