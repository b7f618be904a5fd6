"""Retry under two failure profiles: upstream load, success and latency, vs aiohttp-retry.

The MockServer runs in its own process on loopback; real time, bounded (about a minute).

outage   every request answers 503; 1000 calls by 32 concurrent callers, attempts=4.
         Upstream requests per call: with the default RetryBudget it should stay near 1.2;
         without it, every call makes `attempts` requests.
flaky    20 % of requests answer 503 and 2 % reset the connection (seeded); 10,000 calls by
         32 callers. Success ratio, upstream requests per call, p50/p99 latency per call.
         With 22 % of attempts failing independently, no client can do better than
         (1 - 0.22**k) / 0.78 upstream requests per call for k attempts: 1.268 (k=3, 98.9 %
         success at best), 1.279 (k=4, 99.77 %), 1.281 (k=5, 99.95 %).
flaky20  the same with 20 % of failures in all (18 % 503 + 2 % resets): the floor is
         (1 - 0.2**k) / 0.8, 1.2496 for k=5 (99.97 %).

Upstream requests are the server's own count. Note that bare aiohttp (hence aiohttp-retry,
which wraps the client) re-sends an idempotent request once by itself after a connection
reset; those extra requests are counted too.

Run: python benchmarks/retry_profiles.py  (the [bench] extra for aiohttp-retry)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

import resilient_http as rh
from resilient_http.testing.process import MockServerProcess

CALLERS = 32
OUTAGE_CALLS = 1000
FLAKY_CALLS = 10_000
CONFIG = {
    "routes": [
        {"path": "/down", "script": [503]},
        {
            "path": "/flaky",
            "random_faults": {"error_ratio": 0.2, "reset_ratio": 0.02, "seed": 1},
        },
        {
            "path": "/flaky20",
            "random_faults": {"error_ratio": 0.18, "reset_ratio": 0.02, "seed": 2},
        },
    ]
}

Client = Callable[[], Any]  # returns an object with .get(url) usable as "async with"


async def run(client: Any, url: Any, calls: int) -> tuple[float, list[float]]:
    """``calls`` calls by CALLERS workers: (success ratio, latencies in seconds)."""
    ok = 0
    left = calls
    latencies: list[float] = []

    async def one() -> None:
        nonlocal ok
        t0 = time.perf_counter()
        try:
            async with client.get(url) as resp:
                await resp.read()
                ok += resp.status == 200
        except aiohttp.ClientError:
            pass
        latencies.append(time.perf_counter() - t0)

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(CALLERS)))
    return ok / calls, latencies


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def measure(
    server: MockServerProcess, name: str, make: Callable[[], Awaitable[Any]], path: str, calls: int
) -> dict[str, Any]:
    await server.clear()
    client = await make()
    t0 = time.perf_counter()
    try:
        success, lat = await run(client, server.url(path), calls)
    finally:
        await client.close()
    elapsed = time.perf_counter() - t0
    stats = await server.stats()
    upstream = stats["paths"].get(path, {}).get("count", 0)
    return {
        "name": name,
        "success": success,
        "upstream": upstream / calls,
        "p50": p(lat, 0.5),
        "p99": p(lat, 0.99),
        "seconds": elapsed,
    }


def rh_client(**kw: Any) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        return aiohttp.ClientSession(middlewares=(rh.Retry(**kw),))

    return make


def aiohttp_retry_client(attempts: int) -> Callable[[], Awaitable[Any]] | None:
    try:
        from aiohttp_retry import ExponentialRetry, RetryClient
    except ImportError:
        return None

    async def make() -> Any:
        options = ExponentialRetry(attempts=attempts, statuses={503})
        return RetryClient(retry_options=options)

    return make


async def main() -> None:
    rows: list[tuple[str, dict[str, Any]]] = []
    async with MockServerProcess(config=CONFIG) as server:
        outage = [
            ("rh.Retry(attempts=4)  [default budget]", rh_client(attempts=4)),
            ("rh.Retry(attempts=4, budget=None)", rh_client(attempts=4, budget=None)),
            ("aiohttp-retry ExponentialRetry(4)", aiohttp_retry_client(4)),
        ]
        for name, make in outage:
            if make is not None:
                rows.append(("outage", await measure(server, name, make, "/down", OUTAGE_CALLS)))
        flaky = [
            ("rh.Retry(attempts=4)  [default budget]", rh_client(attempts=4)),
            ("rh.Retry(attempts=5)  [default budget]", rh_client(attempts=5)),
            ("rh.Retry(attempts=5, budget=None)", rh_client(attempts=5, budget=None)),
            ("aiohttp-retry ExponentialRetry(4)", aiohttp_retry_client(4)),
            ("aiohttp-retry ExponentialRetry(5)", aiohttp_retry_client(5)),
        ]
        for name, make in flaky:
            if make is not None:
                rows.append(("flaky", await measure(server, name, make, "/flaky", FLAKY_CALLS)))
        name, make = "rh.Retry(attempts=5)  [default budget]", rh_client(attempts=5)
        rows.append(("flaky20", await measure(server, name, make, "/flaky20", FLAKY_CALLS)))
    print(
        f"aiohttp {aiohttp.__version__}, Python {sys.version.split()[0]}, {CALLERS} callers, "
        f"MockServer in its own process on loopback, real time"
    )
    print(
        f"{'profile':8s} {'client':40s} {'success':>8s} {'upstream/call':>13s} "
        f"{'p50 ms':>7s} {'p99 ms':>7s} {'run s':>6s}"
    )
    for profile, r in rows:
        print(
            f"{profile:8s} {r['name']:40s} {r['success'] * 100:7.2f}% {r['upstream']:13.3f} "
            f"{r['p50'] * 1e3:7.1f} {r['p99'] * 1e3:7.1f} {r['seconds']:6.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
