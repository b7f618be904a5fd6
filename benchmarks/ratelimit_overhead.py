"""CPU cost of taking a rate-limit token that is free (never waits): µs per acquire.

Compares, without network:
- ``async with aiolimiter.AsyncLimiter`` (the issue's reference, ~0.9 µs there);
- ``RateLimit``'s own hooks (``enter`` + ``exit``, what the engine calls), keyed per host
  from a real yarl URL as in middleware mode;
- the engine running a ``Stack`` of one ``RateLimit`` vs a ``Stack`` of one pass-through
  layer (the marginal cost of the layer inside a stack);
and, over a real loopback aiohttp server, requests/s of a session with ``RateLimit`` (a rate
so high it never waits) as a ratio of a bare session.

Run: python benchmarks/ratelimit_overhead.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _harness import FakeRequest, PassThrough, drive, local_server
from aiohttp import ClientSession, TCPConnector, web
from aiohttp.client_middlewares import build_client_middlewares
from aiolimiter import AsyncLimiter
from yarl import URL

import resilient_http as rh
from resilient_http._middleware import Call

HUGE = 1e12  # tokens per second: never waits


async def micro() -> None:
    n = 200_000
    limiter = AsyncLimiter(HUGE, 1)

    async def with_aiolimiter(_: Any) -> None:
        async with limiter:
            pass

    async def aiolimiter_acquire(_: Any) -> None:
        await limiter.acquire()

    rl = rh.RateLimit(HUGE)
    request = FakeRequest(URL("https://api.example.com/v1/items?page=2"))

    async def fn() -> None: ...

    call: Call = [request, fn, None, None, None, None]  # one layer: its slot is call[5]

    def hooks(k: int) -> float:
        enter, leave = rl.enter, rl.exit
        t0 = time.perf_counter()
        for _ in range(k):
            enter(call, 5)
            leave(call, 5, None, None)
        return (time.perf_counter() - t0) / k * 1e6

    async def handler(req: Any) -> Any:
        return None

    plain = build_client_middlewares(handler, [rh.Stack(PassThrough())])
    limited = build_client_middlewares(handler, [rh.Stack(rh.RateLimit(HUGE))])

    rows = {
        "async with AsyncLimiter": min(drive(with_aiolimiter, [None] * n) for _ in range(3)),
        "await AsyncLimiter.acquire()": min(
            drive(aiolimiter_acquire, [None] * n) for _ in range(3)
        ),
        "RateLimit enter+exit (per host)": min(hooks(n) for _ in range(3)),
    }
    stack_plain = min(drive(plain, [request] * n) for _ in range(3))
    stack_rl = min(drive(limited, [request] * n) for _ in range(3))
    rows["Stack(RateLimit) - Stack(no-op)"] = stack_rl - stack_plain
    for name, us in rows.items():
        print(f"{name:34s} {us:6.3f} µs")
    print(f"{'  (Stack(no-op) itself':34s} {stack_plain:6.3f} µs)")


async def loopback(concurrency: int, total: int) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(body=b"ok")

    async def run(url: str, middlewares: tuple[Any, ...]) -> float:
        async with ClientSession(
            middlewares=middlewares, connector=TCPConnector(limit=concurrency)
        ) as s:
            left = [total]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    async with s.get(url) as resp:
                        await resp.read()

            await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up pass
            left[0] = total
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return total / (time.perf_counter() - t0)

    async with local_server("/ok", ok) as url:
        results: dict[str, list[float]] = {"bare": [], "RateLimit": []}
        for _ in range(3):  # interleaved, best of 3
            results["bare"].append(await run(url, ()))
            results["RateLimit"].append(await run(url, (rh.RateLimit(HUGE),)))
        bare = max(results["bare"])
        limited = max(results["RateLimit"])
        print(
            f"loopback, {concurrency:2d} in flight: bare {bare:7.0f} req/s, "
            f"RateLimit {limited:7.0f} req/s, ratio {limited / bare:.3f}"
        )


async def main() -> None:
    await micro()
    await loopback(1, 3000)
    await loopback(64, 6000)


if __name__ == "__main__":
    asyncio.run(main())
