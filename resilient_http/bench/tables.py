"""The benchmark's tables as cells: the main one (narrow by default, every column with
``wide``), the open-loop table and the outage-window table."""

from __future__ import annotations

import math
import statistics

from resilient_http.bench.metrics import Summary, noise
from resilient_http.bench.runner import VariantResult

__all__ = [
    "ARRIVAL_COLUMNS",
    "COLUMNS",
    "LEGEND",
    "NARROW",
    "WINDOW_COLUMNS",
    "allowed_share",
    "rows",
    "tables",
]

COLUMNS = (
    "contender", "req/s", "x bare", "ok %", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
    "up/call", "429 %", "CPU µs", "GC/1k", "srv CPU %",
)
"""The main table's columns with ``wide``. ``req/s`` is logical calls per second, ``ok/s``
successful ones (both medians over rounds); ``x bare`` is the median over rounds of the
throughput ratio to bare aiohttp in the same round; ``up/call`` is upstream requests (the
server's count) per logical call; ``429 %`` is the share of upstream responses that were 429;
``CPU µs`` the client's CPU per call; ``GC/1k`` garbage collections per 1,000 calls; ``srv
CPU %`` is the server's CPU time over the wall time (100% = one core busy: the server was the
limit)."""

NARROW = ("contender", "req/s", "x bare", "ok %", "ok/s", "p50 ms", "p99 ms", "up/call",
          "429 %", "CPU µs")
"""The main table's columns by default (fits 100 columns with names up to 20 characters)."""

LEGEND = ("req/s, ok/s: calls, successful calls per second; x bare: req/s over bare aiohttp's, "
          "same round\nup/call: upstream requests per call; 429 %: of upstream replies; "
          "CPU µs: client CPU per call")
"""The lines under the main table explaining its columns."""

WIDE_LEGEND = "\nGC/1k: collections per 1,000 calls; srv CPU %: the server's CPU over wall time"


def _num(value: float | None, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value * scale, spec)


def _row(s: Summary) -> dict[str, str]:
    share_429 = s.share_429
    return {
        "contender": s.contender,
        "req/s": _num(s.throughput, ",.0f"),
        "x bare": _num(s.ratio, ".2f"),
        "ok %": _num(s.success, ".2f", 100),
        "ok/s": _num(s.goodput, ",.0f"),
        "p50 ms": _num(s.p50, ".2f", 1e3),
        "p95 ms": _num(s.p95, ".2f", 1e3),
        "p99 ms": _num(s.p99, ".2f", 1e3),
        "max ms": _num(s.max, ".1f", 1e3),
        "up/call": _num(s.amplification, ".2f"),
        "429 %": (_num(share_429, ".1f", 100) if share_429 is not None
                  else "-" if s.upstream_429 is not None  # no upstream request at all
                  else f"{s.client_429} seen"),
        "CPU µs": _num(s.cpu_per_call, ".0f", 1e6),
        "GC/1k": _num(s.gc_per_1000, ".1f"),
        "srv CPU %": _num(s.server_cpu_share, ".0f", 100),
    }


def rows(result: VariantResult, wide: bool = False) -> list[list[str]]:
    """The main table's cells, one row per contender (:data:`NARROW` columns, or
    :data:`COLUMNS` when ``wide``)."""
    columns = COLUMNS if wide else NARROW
    return [[cells[c] for c in columns] for cells in map(_row, result.summaries)]


ARRIVAL_COLUMNS = (
    "contender", "offered /s", "started /s", "late %", "max lag ms", "on schedule",
)
"""The open-loop table (a scenario with ``load.rate``): the asked rate; calls started per
second (median over rounds); the share of calls that waited for a caller past their due
time because every caller was busy; the longest such wait; and whether the offered rate was
achieved (at most 1 % of the calls late). With a server-side
rate limit, two more: ``ok/s``, successful calls per second, and ``% of allowed``, the
successful calls over the most the server would admit in the run's time (its burst plus its
rate times the wall time; median over rounds)."""

WINDOW_COLUMNS = (
    "contender", "ok % before", "ok % during", "ok % after", "up/call during",
    "back after ms", "ok % 1st s after",
)
"""The outage-window table: the success rate of the calls started before, during and after
the window; upstream requests the server received during the window per call started in
it; how long after the end the first call started after it succeeded (``> N`` when none
did, N being the milliseconds left in the run); the success rate of the calls started in
the first second after the end."""


def allowed_share(result: VariantResult, contender: str) -> float | None:
    """Successful calls over the most the server's rate limit admits in the run's time
    (``burst + rate * wall``), median over rounds; ``None`` without a server limit."""
    profile = result.scenario.profile
    if profile.rate_limit is None:
        return None
    burst = profile.rate_burst if profile.rate_burst is not None else profile.rate_limit
    shares = [s.ok / (burst + profile.rate_limit * s.wall)
              for s in result.samples if s.contender == contender]
    return statistics.median(shares) if shares else None


def _arrival_row(s: Summary, result: VariantResult) -> list[str]:
    a = s.arrivals
    assert a is not None
    cells = [
        s.contender,
        _num(a.offered, ",.0f"),
        _num(a.achieved, ",.1f"),
        _num(a.late_share, ".1f", 100),
        _num(a.max_lag, ".0f", 1e3),
        "yes" if a.on_schedule else "no",
    ]
    if result.scenario.profile.rate_limit is not None:
        cells += [_num(s.goodput, ",.1f"), _num(allowed_share(result, s.contender), ".1f", 100)]
    return cells


def _window_row(s: Summary, horizon: float | None) -> list[str]:
    w = s.window
    assert w is not None
    if w.recovery is not None:
        back = _num(w.recovery, ".0f", 1e3)
    else:  # no success among the calls started after the end, up to the last one
        back = "never" if horizon is None else f"> {horizon * 1e3:.0f}"
    return [
        s.contender,
        _num(w.ok_before, ".1f", 100),
        _num(w.ok_during, ".1f", 100),
        _num(w.ok_after, ".1f", 100),
        _num(w.amplification_during, ".2f"),
        back,
        _num(w.ok_first_second, ".1f", 100),
    ]


def tables(result: VariantResult, wide: bool = False,
           ) -> list[tuple[str, tuple[str, ...], list[list[str]], str]]:
    """Every table of a variant as ``(title, columns, cells, caption)``: the main one (every
    column when ``wide``), then the open-loop table (a ``rate`` load) and the outage-window
    table (a window), when the scenario has them."""
    legend = LEGEND + (WIDE_LEGEND if wide else "\n--wide: p95, max, GC, server CPU")
    out: list[tuple[str, tuple[str, ...], list[list[str]], str]] = [
        (result.title, COLUMNS if wide else NARROW, rows(result, wide),
         "\n".join([*_caption(result), legend]))
    ]
    with_arrivals = [s for s in result.summaries if s.arrivals is not None]
    if with_arrivals:
        limit = result.scenario.profile.rate_limit
        columns = ARRIVAL_COLUMNS + (("ok/s", "% of allowed") if limit is not None else ())
        first = with_arrivals[0].arrivals
        assert first is not None
        caption = (f"open loop: calls due at {first.offered:g}/s "
                   f"whatever the replies, at most {result.concurrency} in flight; late = "
                   "waited for a caller past its due time (all busy)")
        if limit is not None:
            caption += (f"; % of allowed = successes / what the server admits in the time "
                        f"taken ({limit:g}/s plus its burst)")
        out.append((f"{result.title}: arrivals", columns,
                    [_arrival_row(s, result) for s in with_arrivals], caption))
    with_window = [s for s in result.summaries if s.window is not None]
    if with_window:
        w = with_window[0].window
        assert w is not None
        load = result.scenario.load
        horizon = load.requests / load.rate - w.end if load.rate else None
        caption = (f"every reply {result.scenario.profile.error_status} from {w.start:g} s to "
                   f"{w.end:g} s of the load; up/call during = the server's count of requests "
                   "in the window / calls started in it; back after = end of the window to "
                   "the first success of a call started after it (> the time left: none)")
        out.append((f"{result.title}: outage window {w.start:g}-{w.end:g} s", WINDOW_COLUMNS,
                    [_window_row(s, horizon) for s in with_window], caption))
    return out


def _caption(result: VariantResult) -> list[str]:
    scn = result.scenario
    lines = [
        f"{scn.description} — server: {result.server}; {scn.load.requests} calls x "
        f"{scn.load.rounds} rounds per contender"
        + (f", arriving at {scn.load.rate:g}/s (open loop)" if scn.load.rate else "")
    ]
    spread = noise(result.samples)
    if spread is not None:
        lines.append(
            f"noise: bare aiohttp's own throughput moved ±{spread:.0%} between rounds; "
            f"ratios within that of 1.00 are not resolved by this run"
        )
    lines += [f"skipped: {name}: {reason}" for name, reason in result.skipped]
    return lines
