"""PNG plots of a benchmark variant (``matplotlib``, optional: a clear message when it is
missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resilient_http.bench.runner import VariantResult

__all__ = ["MissingOptional", "plot_variant", "pyplot"]


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


def plot_variant(result: VariantResult, directory: str | Path) -> list[Path]:
    """Latency CDF per contender, and throughput and amplification bars, as PNGs."""
    plt = pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(result.scenario.name)}-c{result.concurrency}"
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(8, 5))
    by_name: dict[str, list[float]] = {}
    for s in result.samples:
        by_name.setdefault(s.contender, []).extend(s.latencies)
    for name, lat in by_name.items():
        xs = sorted(x * 1e3 for x in lat)
        if xs:
            ys = [(k + 1) / len(xs) for k in range(len(xs))]
            ax.step(xs, ys, where="post", label=name)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of calls")
    ax.set_title(f"{result.title}: latency CDF")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    path = out / f"{stem}-latency-cdf.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(path)

    names = [s.contender for s in result.summaries]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    ax1.barh(names, [s.throughput for s in result.summaries], color="tab:blue")
    for k, summary in enumerate(result.summaries):
        if summary.ratio is not None:
            ax1.annotate(f"{summary.ratio:.2f}x", (summary.throughput, k), va="center",
                         fontsize="small")
    ax1.set_xlabel("calls per second (median of rounds)")
    ax1.invert_yaxis()
    amp = [s.amplification if s.amplification is not None else 0.0 for s in result.summaries]
    ax2.barh(names, amp, color="tab:orange")
    ax2.set_xlabel("upstream requests per call")
    ax2.invert_yaxis()
    fig.suptitle(result.title)
    path = out / f"{stem}-throughput.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
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
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
