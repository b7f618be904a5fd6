"""Achieved vs configured rate against a real loopback aiohttp server, real time.

64 callers send GET requests as fast as the limiter lets them for DURATION seconds; the
server counts what it received. The initial burst is counted: a limiter whose bucket starts
full (``burst = rate``, as both ``RateLimit(200)`` and ``AsyncLimiter(200, 1)`` do) lets 200
requests go at once, so over 5 s it delivers (200 + 5 x 200) / 5 = 1.2x the configured rate;
``burst=1`` sends strictly evenly. "expected" is burst + rate x duration.

Run: python benchmarks/ratelimit_accuracy.py [seconds]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _harness import local_server
from aiohttp import ClientSession, TCPConnector, web
from aiolimiter import AsyncLimiter

import resilient_http as rh

RATE = 200.0
CALLERS = 64


async def measure(
    name: str,
    url: str,
    arrivals: list[float],
    duration: float,
    burst: float,
    middlewares: tuple[Any, ...] = (),
    gate: Callable[[], Awaitable[None]] | None = None,
) -> None:
    arrivals.clear()
    async with ClientSession(
        middlewares=middlewares, connector=TCPConnector(limit=CALLERS)
    ) as session:
        start = time.monotonic()
        end = start + duration

        async def caller() -> None:
            while time.monotonic() < end:
                if gate is not None:
                    await gate()
                if time.monotonic() >= end:
                    return
                async with session.get(url) as resp:
                    await resp.read()

        tasks = [asyncio.create_task(caller()) for _ in range(CALLERS)]
        await asyncio.sleep(duration)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    got = sum(1 for a in arrivals if start <= a < end)
    expected = burst + RATE * duration
    print(
        f"{name:28s} {got:5d} requests in {duration:g} s = {got / duration:6.1f} req/s; "
        f"configured {RATE:g}/s -> {got / duration / RATE:5.3f}x; "
        f"vs burst + rate x t ({expected:g}): {got / expected:5.3f}"
    )


async def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    arrivals: list[float] = []

    async def ok(_: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.Response(body=b"ok")

    async with local_server("/ok", ok) as url:
        limiter = AsyncLimiter(RATE, 1)

        async def acquire() -> None:
            await limiter.acquire()

        await measure("AsyncLimiter(200, 1)", url, arrivals, duration, RATE, gate=acquire)
        await measure(
            "RateLimit(200)", url, arrivals, duration, RATE, middlewares=(rh.RateLimit(RATE),)
        )
        await measure(
            "RateLimit(200, burst=1)",
            url,
            arrivals,
            duration,
            1,
            middlewares=(rh.RateLimit(RATE, burst=1),),
        )


if __name__ == "__main__":
    asyncio.run(main())
