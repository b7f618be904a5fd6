"""Results out: the tables printed (``rich`` when installed, plain text otherwise, or
Markdown), progress and JSON. The cells are made in :mod:`resilient_http.bench.tables`, the
PNG plots in :mod:`resilient_http.bench.plots` (both re-exported here)."""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from resilient_http.bench.metrics import noise, percentile
from resilient_http.bench.plots import MissingOptional, plot_variant, pyplot
from resilient_http.bench.progress import have_rich, make_progress
from resilient_http.bench.runner import VariantResult
from resilient_http.bench.tables import (
    ARRIVAL_COLUMNS,
    COLUMNS,
    LEGEND,
    NARROW,
    WINDOW_COLUMNS,
    allowed_share,
    rows,
    tables,
)

__all__ = [
    "ARRIVAL_COLUMNS",
    "COLUMNS",
    "LEGEND",
    "WIDTH",
    "NARROW",
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


WIDTH = 100
"""The columns a table fits in, unless ``wide``: the first column's long names wrap."""


def _wrap(text: str, width: int) -> str:
    """``text`` on lines of at most ``width``, broken after ``", "`` (or anywhere)."""
    lines: list[str] = []
    current = ""
    for piece in text.split(", "):
        candidate = f"{current}, {piece}" if current else piece
        if current and len(candidate) + 1 > width:
            lines.append(current + ",")
            current = piece
        else:
            current = candidate
    lines.append(current)
    return "\n".join(part[k:k + width] for part in lines for k in range(0, len(part), width))


def _fit(columns: Sequence[str], cells: list[list[str]], limit: int | None,
         ) -> list[list[str]]:
    """The cells with the first column wrapped so that a row fits ``limit`` columns."""
    if limit is None or not cells:
        return cells
    rest = sum(max(len(c), *(len(r[k]) for r in cells)) + 2
               for k, c in enumerate(columns) if k)
    room = max(len(columns[0]), 12, limit - rest - 2)
    return [[_wrap(row[0], room), *row[1:]] if len(row[0]) > room else row for row in cells]


def _print_rich(title: str, columns: Sequence[str], cells: list[list[str]], caption: str,
                out: IO[str], limit: int | None = WIDTH) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    cells = _fit(columns, cells, limit)
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False)
    for k, col in enumerate(columns):
        table.add_column(escape(col), justify="left" if k == 0 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*map(escape, row))
    console = Console(file=out, width=limit or max(WIDTH, _width(columns, cells)))
    console.print(table)
    console.print(caption, markup=False, highlight=False)


def _width(columns: Sequence[str], cells: list[list[str]]) -> int:
    """The width a table needs with rich's borders and padding."""
    widths = [max(len(c), *(len(r[k]) for r in cells)) if cells else len(c)
              for k, c in enumerate(columns)]
    return sum(widths) + 2 * len(widths)


def _print_plain(title: str, columns: Sequence[str], cells: list[list[str]], caption: str,
                 out: IO[str], limit: int | None = WIDTH) -> None:
    cells = _fit(columns, cells, limit)
    widths = [max(len(c), *(len(line) for r in cells for line in r[k].splitlines()))
              if cells else len(c) for k, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        pairs = enumerate(zip(values, widths, strict=True))
        return "  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in pairs).rstrip()

    print(f"\n{title}", file=out)
    print(line(columns), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for row in cells:
        first, *more = row[0].splitlines() or [""]
        print(line([first, *row[1:]]), file=out)
        for text in more:
            print(text, file=out)
    for text in caption.splitlines():
        print(text, file=out)


def print_markdown(result: VariantResult, out: IO[str] | None = None) -> None:
    """Print one variant's tables as Markdown (for a README)."""
    print_variant(result, out, markdown=True)


def print_variant(result: VariantResult, out: IO[str] | None = None,
                  plain: bool | None = None, markdown: bool = False,
                  wide: bool = False) -> None:
    """Print one variant's tables (see :func:`tables`; every column when ``wide``): ``rich``
    unless ``plain`` or rich is absent; Markdown when ``markdown``."""
    out = out or sys.stdout
    show = printer(plain, markdown, wide)
    for title, columns, cells, caption in tables(result, wide=wide):
        show(title, columns, cells, caption, out)


def printer(plain: bool | None = None, markdown: bool = False, wide: bool = False,
            ) -> Callable[[str, Sequence[str], list[list[str]], str, IO[str]], None]:
    """The table printer ``(title, columns, cells, caption, out)``: Markdown when
    ``markdown``, plain text when ``plain`` or rich is absent, else ``rich``; within
    :data:`WIDTH` columns unless ``wide`` (or Markdown)."""
    if markdown:
        return _print_markdown
    limit = None if wide else WIDTH
    if plain or (plain is None and not have_rich()):
        return functools.partial(_print_plain, limit=limit)
    return functools.partial(_print_rich, limit=limit)


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
    """NaN and infinities → None, int keys → str, recursively (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
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
