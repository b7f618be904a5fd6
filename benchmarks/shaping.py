"""FieldMask cost and paginate(prefetch=True) gain.

1. CPU cost of FieldMask's enter hook alone (no network), µs per call, against the bare
   handler: the URL rewrite is the work the layer exists for.
2. Throughput against a loopback aiohttp server, 1 request in flight: bare aiohttp vs a
   session with FieldMask, as a ratio.
3. paginate() over 10 pages whose server takes 20 ms per page, with the consumer spending
   20 ms per page: prefetch off vs on (wall time).

Run: python benchmarks/shaping.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from _harness import drive, echo, local_server
from aiohttp import web
from aiohttp.client_middlewares import build_client_middlewares
from multidict import CIMultiDict
from yarl import URL

import resilient_http as rh

URL0 = URL("https://api.example.com/v1/users?q=a")


class Req:
    """The three attributes FieldMask touches (a ClientRequest costs more than the layer)."""

    __slots__ = ("url", "headers", "method")

    def __init__(self) -> None:
        self.url = URL0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.method = "GET"


def cpu() -> None:
    n = 100_000
    chains = {
        "bare handler": echo,
        "FieldMask query": build_client_middlewares(echo, [rh.FieldMask(["id", "name"])]),
        "FieldMask header": build_client_middlewares(
            echo, [rh.FieldMask(["id", "name"], style="header")]
        ),
        "FieldMask, host not matched": build_client_middlewares(
            echo, [rh.FieldMask(["id"], match="other.example.com")]
        ),
    }
    base = None
    for name, chain in chains.items():
        best = min(drive(chain, [Req() for _ in range(n)]) for _ in range(5))
        base = best if base is None else base
        print(f"{name:30s} {best:6.2f} µs/call  (+{best - base:5.2f} µs over bare)")


async def throughput() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    async def run(url: str, middlewares: tuple[Any, ...], n: int) -> float:
        async with aiohttp.ClientSession(middlewares=middlewares) as s:
            for _ in range(200):
                async with s.get(url) as r:
                    await r.read()
            t0 = time.perf_counter()
            for _ in range(n):
                async with s.get(url) as r:
                    await r.read()
            return n / (time.perf_counter() - t0)

    n = 3000
    bare = masked = 0.0
    async with local_server("/x", ok) as url:
        for _ in range(5):  # interleaved, best of 5: the machine may be busy
            bare = max(bare, await run(url, (), n))
            masked = max(masked, await run(url, (rh.FieldMask(["id", "name"]),), n))
    print(f"loopback, 1 in flight: bare {bare:,.0f} req/s, FieldMask {masked:,.0f} req/s "
          f"= {masked / bare:.3f}x")


async def prefetch() -> None:
    async def page(request: web.Request) -> web.Response:
        n = int(request.query.get("page", "1"))
        await asyncio.sleep(0.02)
        headers = {"Link": f'</p?page={n + 1}>; rel="next"'} if n < 10 else {}
        return web.json_response(list(range(10)), headers=headers)

    async with local_server("/p", page) as url, aiohttp.ClientSession() as session:
        for flag in (False, True):
            t0 = time.perf_counter()
            it = rh.paginate(session, url, rh.LinkHeader(), prefetch=flag)
            async for p in it.pages():
                await asyncio.sleep(0.02)  # the caller's work on the page
                assert len(p.items) == 10
            print(f"10 pages, 20 ms server + 20 ms caller per page, prefetch={flag!s:5}: "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    cpu()
    asyncio.run(throughput())
    asyncio.run(prefetch())
