"""Cache-hit throughput: resilient_http's Cache vs a bare aiohttp request vs aiohttp-client-cache.

One run, one machine, the server in its own process on loopback (an aiohttp.web app that
answers ``/r`` with a small JSON body and ``Cache-Control: max-age=3600``). For each client
and each concurrency (1 and 64 requests in flight) it runs requests for about a second, three
times, and keeps the best: requests per second, and the ratio to bare aiohttp.

Clients:
  bare aiohttp                 every request goes to the server
  rh.Cache hit                 ClientSession(middlewares=(rh.Cache(),)), entry warm
  rh.standard(cache=) hit      the recommended stack (Cache, Timeout total, Timeout attempt)
  aiohttp-client-cache hit     CachedSession(cache=CacheBackend()) (memory backend), warm

Run: python benchmarks/cache_hits.py  (needs the [bench] extra for aiohttp-client-cache)
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from typing import Any

import aiohttp
from _harness import Fetch, getter, throughput

import resilient_http as rh

BODY = json.dumps({"id": 1, "name": "resilient", "tags": ["a", "b", "c"]})
DURATION = 1.0
ROUNDS = 3


def serve(port: int) -> None:
    """The server process: one cacheable route."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text=BODY,
            content_type="application/json",
            headers={"Cache-Control": "max-age=3600", "ETag": '"v1"'},
        )

    app = web.Application()
    app.router.add_get("/r", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_listening(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the server did not start")


async def clients(url: str) -> dict[str, tuple[Any, Fetch]]:
    out: dict[str, tuple[Any, Fetch]] = {}
    bare = aiohttp.ClientSession()
    out["bare aiohttp"] = (bare, getter(bare, url))
    cached = aiohttp.ClientSession(middlewares=(rh.Cache(),))
    out["rh.Cache hit"] = (cached, getter(cached, url))
    std = aiohttp.ClientSession(middlewares=rh.standard(cache=rh.Cache()))
    out["rh.standard(cache=) hit"] = (std, getter(std, url))
    try:
        from aiohttp_client_cache import CacheBackend, CachedSession
    except ImportError:
        print("aiohttp-client-cache is not installed: pip install -e '.[bench]'")
    else:
        acc = CachedSession(cache=CacheBackend())
        out["aiohttp-client-cache hit"] = (acc, getter(acc, url))
    for name, (_, fetch) in out.items():
        body = await fetch()  # warm the caches
        assert body == BODY.encode(), name
    return out


async def main(url: str) -> None:
    await wait_listening(url)
    sessions = await clients(url)
    results: dict[tuple[str, int], float] = {}
    try:
        for in_flight in (1, 64):
            for name, (_, fetch) in sessions.items():
                await throughput(fetch, in_flight, 0.2)  # warm-up
                results[name, in_flight] = max(
                    [await throughput(fetch, in_flight, DURATION) for _ in range(ROUNDS)]
                )
    finally:
        for session, _ in sessions.values():
            await session.close()
    print(f"aiohttp {aiohttp.__version__}, Python {sys.version.split()[0]}, "
          f"best of {ROUNDS} x {DURATION:g} s, server in its own process on loopback")
    print(f"{'client':28s} {'in flight':>9s} {'req/s':>10s} {'vs bare':>8s} {'µs/req':>8s}")
    for in_flight in (1, 64):
        bare = results["bare aiohttp", in_flight]
        for name in sessions:
            rate = results[name, in_flight]
            print(f"{name:28s} {in_flight:9d} {rate:10.0f} {rate / bare:7.2f}x "
                  f"{1e6 / rate:8.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
        try:
            asyncio.run(main(f"http://127.0.0.1:{port}/r"))
        finally:
            server.terminate()
            server.wait()
