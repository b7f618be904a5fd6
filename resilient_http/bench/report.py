"""Results out: the table (``rich`` when installed, plain text otherwise), progress and JSON;
the PNG plots are in :mod:`resilient_http.bench.plots` (re-exported here)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from resilient_http.bench.metrics import Summary, noise, percentile
from resilient_http.bench.plots import MissingOptional, plot_variant, pyplot
from resilient_http.bench.runner import VariantResult

__all__ = [
    "ARRIVAL_COLUMNS",
    "COLUMNS",
    "WINDOW_COLUMNS",
    "MissingOptional",
    "allowed_share",
    "machine",
    "make_progress",
    "plot_variant",
    "pyplot",
    "print_variant",
    "printer",
    "rows",
    "tables",
    "to_json",
    "write_json",
]


COLUMNS = (
    "contender", "req/s", "x bare", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "ok %",
    "up/call", "429 %", "CPU µs/call", "GC/1k", "srv CPU %",
)
"""The table's columns. ``req/s`` is logical calls per second, ``ok/s`` successful ones (both
medians over rounds); ``x bare`` is the median over rounds of the throughput ratio to bare
aiohttp in the same round; ``up/call`` is upstream requests (the server's count) per logical
call; ``429 %`` is the share of upstream responses that were 429; ``srv CPU %`` is the
server's CPU time over the wall time (100% = one core busy: the server was the limit)."""


def _num(value: float | None, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value * scale, spec)


def _row(s: Summary) -> list[str]:
    share_429 = s.share_429
    return [
        s.contender,
        _num(s.throughput, ",.0f"),
        _num(s.ratio, ".2f"),
        _num(s.goodput, ",.0f"),
        _num(s.p50, ".2f", 1e3),
        _num(s.p95, ".2f", 1e3),
        _num(s.p99, ".2f", 1e3),
        _num(s.max, ".1f", 1e3),
        _num(s.success, ".2f", 100),
        _num(s.amplification, ".2f"),
        (_num(share_429, ".1f", 100) if share_429 is not None
         else "-" if s.upstream_429 is not None  # no upstream request at all
         else f"{s.client_429} seen"),
        _num(s.cpu_per_call, ".0f", 1e6),
        _num(s.gc_per_1000, ".1f"),
        _num(s.server_cpu_share, ".0f", 100),
    ]


def rows(result: VariantResult) -> list[list[str]]:
    """The table's cells, one row per contender (see :data:`COLUMNS`)."""
    return [_row(s) for s in result.summaries]


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


def tables(result: VariantResult) -> list[tuple[str, tuple[str, ...], list[list[str]], str]]:
    """Every table of a variant as ``(title, columns, cells, caption)``: the main one, then
    the open-loop table (a ``rate`` load) and the outage-window table (a window), when the
    scenario has them."""
    out: list[tuple[str, tuple[str, ...], list[list[str]], str]] = [
        (result.title, COLUMNS, rows(result), "\n".join(_caption(result)))
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


def _have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _print_markdown(title: str, columns: Sequence[str], cells: list[list[str]], caption: str,
                    out: IO[str]) -> None:
    print(f"\n**{title}**\n", file=out)
    print("| " + " | ".join(columns) + " |", file=out)
    print("|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|", file=out)
    for row in cells:
        print("| " + " | ".join(row) + " |", file=out)
    print("", file=out)
    for text in caption.splitlines():
        print(f"{text}  ", file=out)


def _print_rich(title: str, columns: Sequence[str], cells: list[list[str]], caption: str,
                out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", caption_justify="left", caption=caption)
    for k, col in enumerate(columns):
        table.add_column(col, justify="left" if k == 0 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    Console(file=out, width=max(100, _width(columns, cells))).print(table)


def _width(columns: Sequence[str], cells: list[list[str]]) -> int:
    """The width a table needs with rich's borders and padding."""
    widths = [max(len(c), *(len(r[k]) for r in cells)) if cells else len(c)
              for k, c in enumerate(columns)]
    return sum(widths) + 3 * len(widths) + 1


def _print_plain(title: str, columns: Sequence[str], cells: list[list[str]], caption: str,
                 out: IO[str]) -> None:
    widths = [max(len(c), *(len(r[k]) for r in cells)) if cells else len(c)
              for k, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        pairs = enumerate(zip(values, widths, strict=True))
        return "  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in pairs)

    print(f"\n{title}", file=out)
    print(line(columns), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for row in cells:
        print(line(row), file=out)
    for text in caption.splitlines():
        print(text, file=out)


def print_markdown(result: VariantResult, out: IO[str] | None = None) -> None:
    """Print one variant's tables as Markdown (for a README)."""
    print_variant(result, out, markdown=True)


def print_variant(result: VariantResult, out: IO[str] | None = None,
                  plain: bool | None = None, markdown: bool = False) -> None:
    """Print one variant's tables (see :func:`tables`): ``rich`` unless ``plain`` or rich is
    absent; Markdown when ``markdown``."""
    out = out or sys.stdout
    show = printer(plain, markdown)
    for title, columns, cells, caption in tables(result):
        show(title, columns, cells, caption, out)


def printer(plain: bool | None = None, markdown: bool = False) -> Callable[
        [str, Sequence[str], list[list[str]], str, IO[str]], None]:
    """The table printer ``(title, columns, cells, caption, out)``: Markdown when
    ``markdown``, plain text when ``plain`` or rich is absent, else ``rich``."""
    if markdown:
        return _print_markdown
    if plain or (plain is None and not _have_rich()):
        return _print_plain
    return _print_rich


# --- progress -----------------------------------------------------------------------------


class _PlainProgress:
    """A line per variant on stderr, a dot per sample."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def start(self, description: str, total: int) -> None:
        self._stream.write(f"{description}: {total} runs ")
        self._stream.flush()

    def advance(self, detail: str) -> None:
        self._stream.write(".")
        self._stream.flush()

    def stop(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


class _RichProgress:
    """A ``rich`` progress bar on stderr, removed when the variant is done."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), console=Console(stderr=True), transient=True,
        )
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, detail="")

    def advance(self, detail: str) -> None:
        self._progress.update(self._task, advance=1, detail=detail)

    def stop(self) -> None:
        self._progress.stop()
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None


def make_progress(enabled: bool = True) -> Any:
    """A rich bar when stderr is a terminal and rich is installed, dots otherwise, nothing
    when ``enabled`` is false."""
    from resilient_http.bench.runner import NoProgress

    if not enabled:
        return NoProgress()
    if sys.stderr.isatty() and _have_rich():
        return _RichProgress()
    return _PlainProgress(sys.stderr)


# --- JSON ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.platform(),
        "aiohttp": version("aiohttp"),
        "peers": {
            d: version(d) for d in
            ("aiohttp-retry", "tenacity", "stamina", "aiolimiter", "aiohttp-client-cache")
        },
    }


def variant_dict(result: VariantResult) -> dict[str, Any]:
    """One variant as JSON-ready data (summaries and per-round samples, no raw latencies)."""
    return {
        "scenario": result.scenario.name,
        "description": result.scenario.description,
        "concurrency": result.concurrency,
        "server": result.server,
        "requests": result.scenario.load.requests,
        "rounds": result.scenario.load.rounds,
        "rate": result.scenario.load.rate,
        "outage_window": result.scenario.profile.window,
        "labels": result.labels,
        "skipped": [{"contender": n, "reason": r} for n, r in result.skipped],
        "noise": noise(result.samples),
        "summaries": [s.as_dict() for s in result.summaries],
        "samples": [
            {
                "contender": s.contender,
                "round": s.round,
                "throughput": s.throughput,
                "wall": s.wall,
                "ok": s.ok,
                "calls": s.calls,
                "p50": percentile(sorted(s.latencies), 50),
                "p99": percentile(sorted(s.latencies), 99),
                "cpu": s.cpu,
                "gc_collections": s.gc_collections,
                "upstream": s.upstream,
                "upstream_429": s.upstream_429,
                "server_cpu": s.server_cpu,
                "late": s.late,
                "max_lag": s.max_lag,
                "achieved_rate": s.achieved_rate,
                "upstream_during": s.upstream_during,
            }
            for s in result.samples
        ],
    }


def _clean(value: Any) -> Any:
    """NaN → None, int keys → str, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(results: Sequence[VariantResult], extra: dict[str, Any] | None = None,
            ) -> dict[str, Any]:
    """The whole run as JSON-ready data."""
    data: dict[str, Any] = {"machine": machine(), "variants": [variant_dict(r) for r in results]}
    if extra:
        data.update(extra)
    cleaned: dict[str, Any] = _clean(data)
    return cleaned


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``path`` (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return p
