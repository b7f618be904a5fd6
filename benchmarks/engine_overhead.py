"""Nanoseconds per call of a middleware around a handler that answers at once: the CPU cost
of the layers' own work, without the network. A developer's tool for quick comparisons
(noise ~2-3 % on a quiet machine, far more on a busy one); ``instructions.py`` gives the
whole-request figures quoted in the README.

    python benchmarks/engine_overhead.py bare mw1 stack0 stack5 timeout retry standard

With ``--instructions``, CPU instructions per call under callgrind instead of nanoseconds:
exact to a few instructions whatever else the machine does, for comparing engine changes.

With ``RH_BENCH_OTEL=1`` in the environment, the OpenTelemetry SDK (no exporter) and
``resilient_http.otel.instrument(trace_attempts=True)`` are on; with ``RH_BENCH_OTEL=api``,
``instrument(trace_attempts=True)`` with no SDK (the API's no-op providers).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web
from instructions import CONTENDERS, callgrind

from resilient_http._response import build_response


async def capture() -> tuple[aiohttp.ClientRequest, aiohttp.ClientResponse, Any]:
    app = web.Application()
    app.router.add_get("/", lambda r: web.Response(body=b"x" * 64))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen: list[Any] = []

    async def grab(req: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        seen.append(req)
        resp = await handler(req)
        await resp.read()
        seen.append(resp)
        return resp

    session = aiohttp.ClientSession(middlewares=(grab,))
    async with session.get(f"http://127.0.0.1:{port}/") as resp:
        await resp.read()
    await session.close()
    await runner.cleanup()
    return seen[0], seen[1], session


def _otel(sdk: bool) -> None:
    """``RH_BENCH_OTEL``: every attempt traced, with the SDK's providers or the API's."""
    from resilient_http import otel

    if not sdk:
        otel.instrument(trace_attempts=True)
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    otel.instrument(
        trace_attempts=True,
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
    )


async def main() -> None:
    if os.environ.get("RH_BENCH_OTEL") in ("1", "api"):
        _otel(os.environ["RH_BENCH_OTEL"] == "1")
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(CONTENDERS))
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per call under callgrind instead of ns")
    args = parser.parse_args()
    if args.instructions:
        names = ["direct", *args.names]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # one valgrind per core
            per = pool.map(lambda name: _per_call(name, args.n), names)
            counted = dict(zip(names, per, strict=True))
        base = counted.pop("direct")
        print(f"one plain coroutine level: {base:,.0f} instructions")
        for name, per in counted.items():
            print(f"{name:10s} {per:9,.0f} instructions/call  ({per - base:+7,.0f})")
        return
    request, live, _ = await capture()
    response = build_response(
        "GET", live.url, status=200, reason="OK", headers=live.headers,
        raw_headers=live.raw_headers, body=b"x" * 64, request_info=live.request_info,
        loop=asyncio.get_running_loop(),
    )

    async def handler(req: Any) -> Any:
        return response

    async def direct(req: Any, h: Any) -> Any:
        return await h(req)

    results: dict[str, float] = {}
    for name in ["direct", *args.names]:
        if name in ("bare", "bare-urls"):
            continue
        mws = CONTENDERS[name]() if name != "direct" else (direct,)
        chain: Any = handler
        for mw in reversed(mws):
            chain = (lambda m, h: (lambda r: m(r, h)))(mw, chain)
        best = float("inf")
        gc.collect()
        gc.disable()  # collections would land at different points in each run
        for _ in range(args.repeat):
            t0 = time.perf_counter_ns()
            for _ in range(args.n):
                await chain(request)
            best = min(best, (time.perf_counter_ns() - t0) / args.n)
        gc.enable()
        results[name] = best
    base = results.pop("direct")
    print(f"one plain coroutine level: {base:.0f} ns")
    for name, ns in results.items():
        print(f"{name:10s} {ns:7.0f} ns/call  ({ns - base:+6.0f} vs one plain level)")


def _per_call(name: str, n: int) -> float:
    """Instructions per call of one contender: two runs under callgrind (n and 3n calls, one
    repeat each), so start-up and capture cancel out."""

    def count(calls: int) -> int:
        return callgrind(__file__, name, "-n", str(calls), "--repeat", "1")

    return (count(3 * n) - count(n)) / (2 * n)


if __name__ == "__main__":
    asyncio.run(main())
