"""PNG plots of a benchmark variant (``matplotlib``, optional: a clear message when it is
missing). Success is drawn on a "nines" scale (:func:`nines`), where 97 % and 99.8 % are far
apart; every bar carries its value; failed calls have their own latency CDF."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resilient_http.bench.runner import VariantResult
from resilient_http.bench.stats import Interval

if TYPE_CHECKING:
    from resilient_http.bench.tune import TuneResult

__all__ = ["MissingOptional", "nines", "plot_tune", "plot_variant", "pyplot"]


class MissingOptional(RuntimeError):
    """An optional package (from the ``[bench]`` extra) is needed and absent."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or :class:`MissingOptional`."""
    try:
        import matplotlib
    except ImportError:
        raise MissingOptional(
            "--plot needs matplotlib: pip install 'resilient-http[bench]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")


def nines(share: float, calls: int) -> float:
    """The success scale of the plots, ``-log10(1 - share)``: 90 % is 1, 99 % is 2, 99.9 % is
    3, so 97 % (1.5) and 99.8 % (2.7) lie far apart; 100 % is drawn as half a failure in
    ``calls`` (``1 - 0.5 / calls``), never at infinity."""
    if math.isnan(share):
        return 0.0
    cap = 1.0 - 0.5 / max(calls, 1)
    return -math.log10(1.0 - min(max(share, 0.0), cap))


_TICKS = (0.0, 90.0, 97.0, 99.0, 99.8, 99.99, 99.999)
"""Success rates (%) labelled on the nines axis."""


def _nines_axis(ax: Any, top: float) -> None:
    """Label an x axis in :func:`nines` as percentages."""
    ticks = [t for t in _TICKS if -math.log10(1 - t / 100) <= max(top, 2.0) + 0.3]
    ax.set_xticks([-math.log10(1 - t / 100) for t in ticks])
    ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize="small")
    ax.set_xlim(0, max(ax.get_xticks()[-1], top) * 1.15)
    ax.set_xlabel("calls that succeeded, % (nines scale: 90, 99, 99.9 evenly spaced)")


def _label_bars(ax: Any, values: Sequence[float], texts: Sequence[str]) -> None:
    """Write each bar's value at its end."""
    for k, (v, text) in enumerate(zip(values, texts, strict=True)):
        ax.annotate(f" {text}", (v if not math.isnan(v) else 0.0, k), va="center",
                    fontsize="small")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _cdf(ax: Any, latencies: Sequence[float], **style: Any) -> None:
    xs = sorted(x * 1e3 for x in latencies)
    if xs:
        ax.step(xs, [(k + 1) / len(xs) for k in range(len(xs))], where="post", **style)


def _latency_cdf(plt: Any, result: VariantResult, path: Path) -> Path:
    """Successful and failed calls' latency CDFs side by side (a fast failure must not pass
    for a fast call)."""
    fig, (ok_ax, bad_ax) = plt.subplots(1, 2, figsize=(13, 5), sharex=True)
    names = [s.contender for s in result.summaries]
    for k, name in enumerate(names):
        group = [s for s in result.samples if s.contender == name]
        failed = [x for s in group for x in s.failed]
        ok = list((Counter(x for s in group for x in s.latencies) - Counter(failed)).elements())
        color = f"C{k % 10}"
        _cdf(ok_ax, ok, color=color, label=f"{name} ({len(ok):,})")
        _cdf(bad_ax, failed, color=color, linestyle="--", label=f"{name} ({len(failed):,})")
    for ax, what in ((ok_ax, "successful calls"), (bad_ax, "failed calls")):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel(f"share of {what}")
        ax.set_title(what)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "none", transform=ax.transAxes, ha="center")
    fig.suptitle(f"{result.title}: latency CDF")
    return _save(plt, fig, path)


def plot_variant(result: VariantResult, directory: str | Path) -> list[Path]:
    """Latency CDFs (successful and failed calls apart), and bars of throughput, success
    (nines scale) and upstream requests per call, values written on them, as PNGs."""
    plt = pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(result.scenario.name)}-c{result.concurrency}"
    written = [_latency_cdf(plt, result, out / f"{stem}-latency-cdf.png")]

    summaries = result.summaries
    names = [s.contender for s in summaries]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, max(3.0, 0.45 * len(names) + 1.5)),
                                        sharey=True)
    rates = [s.throughput for s in summaries]
    ax1.barh(names, rates, color="tab:blue")
    _label_bars(ax1, rates, [f"{s.throughput:,.0f}" + (f" ({s.ratio:.2f}x)" if s.ratio else "")
                             for s in summaries])
    ax1.set_xlabel("calls per second (median of rounds; x bare aiohttp)")
    ok = [nines(s.success, s.calls) for s in summaries]
    ax2.barh(names, ok, color="tab:green")
    _label_bars(ax2, ok, [f"{100 * s.success:.2f} %" for s in summaries])
    _nines_axis(ax2, max(ok, default=0.0))
    amp = [s.amplification if s.amplification is not None else math.nan for s in summaries]
    ax3.barh(names, [0.0 if math.isnan(a) else a for a in amp], color="tab:orange")
    _label_bars(ax3, amp, ["-" if math.isnan(a) else f"{a:.2f}" for a in amp])
    ax3.set_xlabel("upstream requests per call")
    ax1.invert_yaxis()
    fig.suptitle(result.title)
    written.append(_save(plt, fig, out / f"{stem}-throughput.png"))
    window = result.scenario.profile.window
    if window is not None:
        written.append(_plot_window(plt, result, window, out / f"{stem}-outage-window.png"))
    return written


def _plot_window(plt: Any, result: VariantResult, window: tuple[float, float], path: Path,
                 step: float = 0.1) -> Path:
    """Success rate over time (calls by start time, ``step``-second bins, every round) per
    contender, with the outage window shaded."""
    fig, ax = plt.subplots(figsize=(10, 5))
    by_name: dict[str, list[tuple[float, float, bool]]] = {}
    for s in result.samples:
        by_name.setdefault(s.contender, []).extend(s.timeline or ())
    for name, calls in by_name.items():
        bins: dict[int, list[int]] = {}
        for t0, _, ok in calls:
            cell = bins.setdefault(int(t0 / step), [0, 0])
            cell[0] += 1
            cell[1] += ok
        keys = sorted(bins)
        ax.step([k * step for k in keys], [100.0 * bins[k][1] / bins[k][0] for k in keys],
                where="post", label=name)
    ax.axvspan(*window, color="tab:red", alpha=0.12, label="outage")
    ax.set_xlabel("call start (s from the start of the load)")
    ax.set_ylabel(f"calls that succeeded (%, {step * 1e3:g} ms bins)")
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{result.title}: success over time")
    return _save(plt, fig, path)


def _bars(ax: Any, names: Sequence[str], found: Sequence[Interval], scale: float,
          colors: Sequence[str], spec: str) -> None:
    """Bars at the estimates with their intervals as error bars, values written on them."""
    est = [0.0 if math.isnan(iv.estimate) else iv.estimate * scale for iv in found]
    lows = [0.0 if not iv.known else max(0.0, e - iv.low * scale)
            for iv, e in zip(found, est, strict=True)]
    highs = [0.0 if not iv.known or math.isinf(iv.high) else max(0.0, iv.high * scale - e)
             for iv, e in zip(found, est, strict=True)]
    ax.barh(names, est, color=colors, xerr=[lows, highs], capsize=3)
    _label_bars(ax, [e + h for e, h in zip(est, highs, strict=True)],
                ["-" if not iv.known else format(iv.estimate * scale, spec) for iv in found])


def plot_tune(result: TuneResult, directory: str | Path) -> Path:
    """The grid as bars with 95 % intervals: success (nines scale), successful calls per
    second, upstream requests per call, p99; the winner in green, the points that could not
    be told apart in blue."""
    plt = pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    by_name = {s.contender: s for s in result.variant.summaries}
    names = [p.name for p in result.points if p.name in result.intervals]
    verdict = result.verdict
    leaders = set(verdict.leaders) if verdict else set()
    colors = ["tab:green" if result.best and n == result.best.name
              else "tab:blue" if n in leaders and result.best is None else "tab:gray"
              for n in names]
    fig, axes = plt.subplots(1, 4, figsize=(20, max(3.0, 0.45 * len(names) + 1.5)),
                             sharey=True)
    calls = [by_name[n].calls for n in names]
    ok = [result.intervals[n].get("success") for n in names]
    success = [Interval(nines(iv.low, c), nines(iv.estimate, c), nines(iv.high, c))
               if iv is not None else Interval(math.nan, math.nan, math.nan)
               for iv, c in zip(ok, calls, strict=True)]
    axes[0].barh(names, [iv.estimate for iv in success], color=colors,
                 xerr=[[max(0.0, iv.estimate - iv.low) for iv in success],
                       [max(0.0, iv.high - iv.estimate) for iv in success]], capsize=3)
    _label_bars(axes[0], [iv.high for iv in success],
                [f"{100 * by_name[n].success:.2f} %" for n in names])
    _nines_axis(axes[0], max((iv.high for iv in success), default=0.0))
    goodput = [by_name[n].goodput for n in names]
    axes[1].barh(names, goodput, color=colors)
    _label_bars(axes[1], goodput, [f"{g:,.0f}" for g in goodput])
    axes[1].set_xlabel("successful calls per second (median of rounds)")
    nan = Interval(math.nan, math.nan, math.nan)
    _bars(axes[2], names, [result.intervals[n].get("amplification", nan) for n in names], 1.0,
          colors, ".2f")
    axes[2].set_xlabel("upstream requests per call")
    _bars(axes[3], names, [result.intervals[n].get("p99", nan) for n in names], 1e3, colors,
          ".1f")
    axes[3].set_xlabel("p99 latency (ms)")
    axes[0].invert_yaxis()
    fig.suptitle(f"tune {result.variant.scenario.name}, {result.rounds} rounds (error bars: "
                 f"95 % intervals)\n{verdict.message if verdict else ''}", y=1.04)
    return _save(plt, fig, out / f"tune-{_slug(result.variant.scenario.name)}.png")

