"""Nanoseconds per call of a middleware around a handler that answers at once: the CPU cost
of the layers' own work, without the network. A developer's tool for quick comparisons
(noise ~2-3 %); ``instructions.py`` gives the whole-request figures quoted in the README.

    python benchmarks/engine_overhead.py bare mw1 stack0 stack5 timeout retry standard
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web
from instructions import CONTENDERS

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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(CONTENDERS))
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
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
        mws = CONTENDERS[name]() if name != "direct" else (direct,)
        if name == "bare":
            continue
        chain: Any = handler
        for mw in reversed(mws):
            chain = (lambda m, h: (lambda r: m(r, h)))(mw, chain)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter_ns()
            for _ in range(args.n):
                await chain(request)
            best = min(best, (time.perf_counter_ns() - t0) / args.n)
        results[name] = best
    base = results.pop("direct")
    print(f"one plain coroutine level: {base:.0f} ns")
    for name, ns in results.items():
        print(f"{name:10s} {ns:7.0f} ns/call  ({ns - base:+6.0f} vs one plain level)")


if __name__ == "__main__":
    asyncio.run(main())
