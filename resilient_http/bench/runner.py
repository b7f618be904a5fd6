"""Run a scenario: contenders interleaved in rounds, one sample each, the order rotated
every round (A B C, B C A, C A B, ...).

The rotation matters: with a fixed order, the contender that runs right after a given one
pays or gains the same position effect every round (measured here on nginx at 64 in flight:
the same 5-layer Stack cost +3.4 µs of client CPU per call in one position and +9.4 µs in
another), and the median cannot remove a bias that every round shares.

For each contender in each round the runner resets the server to the profile (fresh
counters, rate-limit bucket and cache), builds the contender from its settings (fresh layers,
fresh session), runs the warm-up calls, then the measured calls, and reads the server's
counters before and after. The client's CPU time (``time.process_time``) and the garbage
collector's collection count are taken around the measured calls only; a full collection
runs before them so one contender's garbage is not billed to the next. A profile with an
outage window is armed on the server (:meth:`Upstream.arm`) right before the measured calls,
about a millisecond before the first one.

With ``load.rate`` the calls are an open loop (see :class:`~resilient_http.bench.scenario.
Load`): call ``k`` is due ``k / rate`` seconds after the start; the ``concurrency`` callers
take the calls in order, each sleeping until its call is due, so a free caller starts a call
on time whatever the others wait for. A call that no caller could take until more than
:data:`LATE` after its due time is counted late, with its lag. The sleep's own timer slack
(a few ms on a busy machine) is not lateness; a client too slow to keep up shows in the
rate of starts achieved.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from resilient_http.bench.contenders import Caller, Contender, lookup
from resilient_http.bench.metrics import Sample, Summary, summarize
from resilient_http.bench.scenario import Load, Profile, Scenario
from resilient_http.bench.upstream import Upstream

__all__ = [
    "LATE",
    "Driven",
    "Entry",
    "Progress",
    "VariantResult",
    "drive",
    "plan",
    "run_one",
    "run_variant",
]

LATE = 0.001
"""An open-loop call is *late* when no caller was free at its due time and none freed up
within this many seconds."""


class Progress(Protocol):
    """Told about every sample (see :mod:`resilient_http.bench.report` for the bars)."""

    def start(self, description: str, total: int) -> None:
        """A variant starts: ``total`` samples to take."""
        ...

    def advance(self, detail: str) -> None:
        """One sample done."""
        ...

    def stop(self) -> None:
        """The variant is done."""
        ...


class NoProgress:
    """A :class:`Progress` that shows nothing."""

    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, detail: str) -> None:
        return None

    def stop(self) -> None:
        return None


@dataclass(frozen=True)
class Entry:
    """A contender ready to run: the contender and its settings."""

    contender: Contender
    settings: Mapping[str, Any]
    name: str = ""

    @property
    def key(self) -> str:
        """The name in results (the contender's, unless renamed, e.g. a grid point)."""
        return self.name or self.contender.name


@dataclass
class VariantResult:
    """One scenario at one concurrency."""

    scenario: Scenario
    concurrency: int
    server: str
    samples: list[Sample]
    summaries: list[Summary]
    labels: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.scenario.name} · {self.concurrency} in flight"


def plan(
    scenario: Scenario, only: Sequence[str] | None = None
) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The contenders of a scenario that can run here, and ``(name, reason)`` for the rest.

    ``only`` keeps those names (in the scenario's order); an unknown name is a ``KeyError``.
    """
    names = list(scenario.contenders)
    if only:
        for name in only:
            lookup(name, scenario.stacks)  # raises on an unknown name
        names = [n for n in names if n in only] + [n for n in only if n not in names]
    entries: list[Entry] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        contender = lookup(name, scenario.stacks)
        settings = scenario.settings.get(name, {})
        reason = contender.missing(settings)
        if reason is not None:
            skipped.append((name, reason))
        else:
            entries.append(Entry(contender, settings))
    return entries, skipped


def _gc_count() -> int:
    return sum(s["collections"] for s in gc.get_stats())


@dataclass
class Driven:
    """What :func:`drive` did besides recording each call.

    Attributes:
        ok: calls that succeeded (a 2xx/3xx status, no exception).
        late: open loop only: calls no caller could take until more than :data:`LATE`
            after their due time (every caller was busy).
        max_lag: open loop only: the longest wait of a late call for a caller, in seconds
            (0 when no call was late).
        last_start: open loop only: seconds from the start of the load to the start of
            the last call.
        failed: the latencies of the calls that failed (seconds; in ``latencies`` too).
    """

    ok: int = 0
    late: int = 0
    max_lag: float = 0.0
    last_start: float = 0.0
    failed: list[float] = field(default_factory=list)


async def drive(
    call: Caller,
    url: str,
    n: int,
    concurrency: int,
    rate: float | None,
    latencies: list[float],
    statuses: Counter[int],
    errors: Counter[str],
    timeline: list[tuple[float, float, bool]] | None = None,
) -> Driven:
    """Make ``n`` calls with ``concurrency`` callers (an open loop at ``rate`` calls/s when
    given, see the module docstring); record each call's latency (failed calls too), final
    status (``0`` for an exception without one) and exception type, and with ``timeline``
    each call's ``(start, end, ok)`` in seconds from the start of the load."""
    out = Driven()
    counter = itertools.count()
    loop = asyncio.get_running_loop()
    start = loop.time()
    perf = time.perf_counter
    origin = perf()

    async def worker() -> None:
        for k in counter:
            if k >= n:
                return
            if rate is not None:
                # A free caller takes the next call at once and sleeps until it is due; a
                # call taken after its due time waited for a caller (the timer slack of the
                # sleep, several ms on a busy VM, is not lateness).
                delay = start + k / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -LATE:
                    out.late += 1
                    if -delay > out.max_lag:
                        out.max_lag = -delay
                out.last_start = loop.time() - start  # calls start in order
            t0 = perf()
            try:
                status = await call(url)
            except Exception as exc:
                t1 = perf()
                latencies.append(t1 - t0)
                code = getattr(exc, "status", 0)
                statuses[code if isinstance(code, int) else 0] += 1
                errors[type(exc).__name__] += 1
                success = False
            else:
                t1 = perf()
                latencies.append(t1 - t0)
                statuses[status] += 1
                success = 200 <= status < 400
                if success:
                    out.ok += 1
            if not success:
                out.failed.append(t1 - t0)
            if timeline is not None:
                timeline.append((t0 - origin, t1 - origin, success))

    workers = min(concurrency, n)
    if workers <= 1:
        await worker()
    else:
        await asyncio.gather(*(worker() for _ in range(workers)))
    return out


async def run_one(
    entry: Entry,
    upstream: Upstream,
    profile: Profile,
    load: Load,
    concurrency: int,
    round_no: int,
) -> Sample:
    """One sample: a fresh server state and a fresh contender (see the module docstring)."""
    await upstream.prepare(profile)
    url = upstream.url(profile.path)
    async with entry.contender.factory(entry.settings) as call:
        if load.warmup:
            await drive(call, url, load.warmup, concurrency, None, [], Counter(), Counter())
        before = await upstream.stats(profile.path)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        window = profile.window
        timeline: list[tuple[float, float, bool]] | None = [] if window else None
        gc.collect()
        if window:
            await upstream.arm(profile)
        gc0 = _gc_count()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        driven = await drive(call, url, load.requests, concurrency, load.rate, latencies,
                             statuses, errors, timeline)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        collections = _gc_count() - gc0
        after = await upstream.stats(profile.path)

    def delta(a: float | None, b: float | None) -> Any:
        return None if a is None or b is None else b - a

    return Sample(
        contender=entry.key,
        round=round_no,
        calls=load.requests,
        ok=driven.ok,
        wall=wall,
        latencies=latencies,
        failed=driven.failed,
        statuses=statuses,
        errors=errors,
        cpu=cpu,
        gc_collections=collections,
        upstream=delta(before.count, after.count),
        upstream_429=delta(before.status_429, after.status_429),
        server_cpu=delta(before.cpu, after.cpu),
        rate=load.rate,
        late=driven.late,
        max_lag=driven.max_lag,
        last_start=driven.last_start,
        window=window,
        timeline=timeline,
        upstream_during=after.outage_during,
    )


async def run_variant(
    scenario: Scenario,
    entries: Sequence[Entry],
    upstream: Upstream,
    server: str,
    concurrency: int,
    *,
    progress: Progress | None = None,
    skipped: Sequence[tuple[str, str]] = (),
) -> VariantResult:
    """Every round of every entry at one concurrency, interleaved; summarized."""
    progress = progress or NoProgress()
    load = scenario.load
    samples: list[Sample] = []
    progress.start(f"{scenario.name} · {concurrency} in flight", load.rounds * len(entries))
    try:
        for round_no in range(load.rounds):
            shift = round_no % len(entries) if entries else 0
            for entry in (*entries[shift:], *entries[:shift]):
                samples.append(
                    await run_one(entry, upstream, scenario.profile, load, concurrency, round_no)
                )
                progress.advance(f"round {round_no + 1}/{load.rounds}: {entry.key}")
    finally:
        progress.stop()
    return VariantResult(
        scenario=scenario,
        concurrency=concurrency,
        server=server,
        samples=samples,
        summaries=summarize(samples),
        labels={e.key: e.contender.label for e in entries},
        skipped=list(skipped),
    )
