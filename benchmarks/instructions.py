"""CPU instructions per request, counted by callgrind: repeatable where req/s is not.

On a shared 2-core VM throughput ratios move by ±5-10 % between runs of the same code, too
much to see a 1 % change. callgrind counts instructions, so two runs agree to ~1 %. Each
contender runs twice under callgrind (N and 5N requests against nginx on loopback, or the
MockServer process without nginx); the difference divided by 4N is the cost of one request,
start-up excluded.

    python benchmarks/instructions.py bare mw1 stack5 timeout standard [--requests 512]

Needs valgrind (Debian package `valgrind`). Measured 2026-11-25, aiohttp 3.14.5, Python 3.11,
1 in flight: bare 330k instructions per request, one no-op middleware +4k, Stack() with no
layer +8.6k, Stack of 5 pass-through layers +17k, Timeout(30, stream=True) +18k,
Timeout(30) +21k, standard() +43k.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp

import resilient_http as rh
from resilient_http.bench.contenders import PassThrough, noop_mw

CONTENDERS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "bare": lambda: (),
    "mw1": lambda: (noop_mw,),
    "stack0": lambda: (rh.Stack(),),
    "stack1": lambda: (rh.Stack(PassThrough()),),
    "stack5": lambda: (rh.Stack(*(PassThrough() for _ in range(5))),),
    "timeout": lambda: (rh.Timeout(30),),
    "tstream": lambda: (rh.Timeout(30, stream=True),),
    "retry": lambda: (rh.Retry(),),
    "hedge": lambda: (rh.Hedge(),),
    "breaker": lambda: (rh.CircuitBreaker(),),
    "ratelimit": lambda: (rh.RateLimit(1e9),),
    "fieldmask": lambda: (rh.FieldMask(["id"]),),
    "standard": lambda: rh.standard(),
    "cache": lambda: (rh.Cache(ttl=3600),),  # the first request a miss, then hits
    # The same on Redis (a server started here unless REDIS_URL is set): with an L1, the
    # hits never leave the process; without, each hit is one HGETALL and a decode.
    "cache-redis-l1": lambda: (rh.Cache(ttl=3600, store=_redis_cache(l1=64)),),
    "cache-redis": lambda: (rh.Cache(ttl=3600, store=_redis_cache(l1=0)),),
}


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _redis_cache(l1: int) -> Any:
    from resilient_http.redis.cache import RedisCacheStore

    store = rh.RedisStore(os.environ["REDIS_URL"], prefix=f"bench{os.getpid()}",
                          socket_timeout=5.0)
    return RedisCacheStore(store, l1=l1, l1_ttl=3600)


async def child(name: str, requests: int, url: str) -> None:
    async with aiohttp.ClientSession(middlewares=CONTENDERS[name]()) as session:
        for _ in range(requests):
            async with session.get(url) as resp:
                await resp.read()


def callgrind(*args: str) -> int:
    """CPU instructions of ``python ARGS`` under callgrind (with a fixed hash seed)."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *args],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    ).stderr
    match = re.search(r"Collected : (\d+)", out)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out}")
    return int(match.group(1))


def counted(name: str, requests: int, url: str) -> int:
    return callgrind(__file__, "--child", name, "--requests", str(requests), "--url", url)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["bare", "mw1", "stack5", "standard"])
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        await child(args.child, args.requests, args.url)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    redis_server: Any = None
    if any(name.startswith("cache-redis") for name in args.names) and "REDIS_URL" not in os.environ:
        sys.path.insert(0, _ROOT)
        from tests._redis import RedisServer, server_binary

        redis_server = RedisServer(server_binary() or "redis-server")
        redis_server.start()
        os.environ["REDIS_URL"] = redis_server.url
    nginx = shutil.which("nginx")
    server: Any
    if nginx is not None:
        from resilient_http.bench.upstream import NginxUpstream

        server = NginxUpstream(nginx)
        await server.start()
        url = server.url("/")
    else:
        from resilient_http.testing import MockServerProcess

        server = MockServerProcess()
        await server.start()
        url = str(server.url("/ok"))
    print(f"server: {'nginx' if nginx else 'MockServer process'}; {args.requests} and "
          f"{5 * args.requests} requests per contender under callgrind, 1 in flight")
    try:
        n = args.requests
        cores = asyncio.Semaphore(os.cpu_count() or 1)  # one valgrind per core

        async def count(name: str, calls: int) -> int:
            async with cores:
                return await asyncio.to_thread(counted, name, calls, url)

        async def per_request(name: str) -> float:
            low, high = await asyncio.gather(count(name, n), count(name, 5 * n))
            return (high - low) / (4 * n)

        pers = await asyncio.gather(*map(per_request, args.names))
        base = pers[0]
        for name, per in zip(args.names, pers, strict=True):
            print(f"{name:10s} {per:9,.0f} instructions/request  ({per - base:+7,.0f})")
    finally:
        await server.close()
        if redis_server is not None:
            redis_server.close()


if __name__ == "__main__":
    asyncio.run(main())
