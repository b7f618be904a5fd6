"""CPU instructions per request, counted by callgrind: repeatable where req/s is not.

On a shared machine throughput ratios move by 5-20 % between runs of the same code, too much
to see a 1 % change. callgrind counts instructions, so two runs agree to ~1 %. Each contender
runs twice under callgrind (N and 5N sequential requests against nginx on loopback, or the
MockServer process without nginx); the difference divided by 4N is the cost of one request,
start-up excluded. Our layers and their peers run in the same table, one call shape for all
(GET, read the body).

This is ``resilient-http bench --instructions`` and ``python benchmarks/instructions.py``.
It needs valgrind (``apt-get install valgrind``, or your distribution's ``valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp

import resilient_http as rh
from resilient_http._response import build_response
from resilient_http.bench.contenders import (
    REGISTRY,
    Caller,
    PassThrough,
    _session_caller,
    noop_mw,
)

__all__ = [
    "CONTENDERS", "DEFAULT", "PEERS", "VALGRIND_MISSING", "callgrind", "child", "main", "measure",
]

VALGRIND_MISSING = (
    "counting instructions needs valgrind, which is not installed: "
    "apt-get install valgrind (Debian, Ubuntu), dnf install valgrind (Fedora), "
    "or your distribution's valgrind package"
)


class Prebuilt:
    """A middleware answering every request after the first with a ``ClientResponse`` built
    from the first one's status, headers and body: the ceiling of any cache hit."""

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        self._kept: tuple[Any, ...] | None = None

    async def __call__(self, req: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        kept = self._kept
        if kept is None:
            resp: aiohttp.ClientResponse = await handler(req)
            body = await resp.read()
            self._kept = (resp.status, resp.reason or "", resp.headers, resp.raw_headers, body)
            return resp
        status, reason, headers, raw, body = kept
        return build_response(
            req.method, req.url, status=status, reason=reason, headers=headers,
            raw_headers=raw, body=body, request_info=req.request_info, loop=req.loop,
            session=getattr(req, "_session", None),
        )


CONTENDERS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "bare": lambda: (),
    "mw1": lambda: (noop_mw,),
    "stack0": lambda: (rh.Stack(),),
    "stack1": lambda: (rh.Stack(PassThrough()),),
    "stack5": lambda: (rh.Stack(*(PassThrough() for _ in range(5))),),
    "retry": lambda: (rh.Retry(),),
    "timeout": lambda: (rh.Timeout(30),),
    "tstream": lambda: (rh.Timeout(30, stream=True),),
    "ratelimit": lambda: (rh.RateLimit(1e9),),
    "breaker": lambda: (rh.CircuitBreaker(),),
    "hedge": lambda: (rh.Hedge(),),
    "fieldmask": lambda: (rh.FieldMask(["id"]),),
    "standard": lambda: rh.standard(),
    "prebuilt": lambda: (Prebuilt(),),
    "cache": lambda: (rh.Cache(ttl=3600),),  # the first request a miss, then hits
    "bare-urls": lambda: (),  # a new URL per request: the baseline of cache-miss
    "cache-miss": lambda: (rh.Cache(ttl=3600),),  # a new URL per request: each one stored
    # The cache on Redis (REDIS_URL; benchmarks/instructions.py starts a server): with an L1
    # the hits never leave the process; without, each hit is one HGETALL and a decode.
    "cache-redis-l1": lambda: (rh.Cache(ttl=3600, store=_redis_cache(l1=64)),),
    "cache-redis": lambda: (rh.Cache(ttl=3600, store=_redis_cache(l1=0)),),
}
"""Our contenders: name → the session's middlewares."""


def _redis_cache(l1: int) -> Any:
    from resilient_http.redis.cache import RedisCacheStore

    url = os.environ.get("REDIS_URL")
    if url is None:
        raise SystemExit("the cache-redis contenders need REDIS_URL (a Redis or Valkey server)")
    store = rh.RedisStore(url, prefix=f"bench{os.getpid()}", socket_timeout=5.0)
    return RedisCacheStore(store, l1=l1, l1_ttl=3600)

PEERS: dict[str, str] = {
    "aiohttp-retry": "aiohttp-retry",
    "aiolimiter": "aiolimiter",
    "tenacity": "tenacity",
    "stamina": "stamina",
    "client-cache": "aiohttp-client-cache",
}
"""Peer contenders: name here → the name of its factory in the bench registry."""

NEW_URLS = frozenset({"bare-urls", "cache-miss"})
"""Contenders that request a new URL each time (a query string ``?n=I``)."""

DEFAULT = (
    "bare", "mw1", "retry", "timeout", "ratelimit", "breaker", "standard",
    "aiohttp-retry", "aiolimiter", "tenacity", "stamina",
    "cache", "prebuilt", "client-cache", "bare-urls", "cache-miss",
)
"""The table of the README, in its order."""

LABELS: dict[str, str] = {
    "bare": "bare aiohttp",
    "mw1": "one no-op native middleware (floor of any middleware)",
    "retry": "`Retry()`",
    "timeout": "`Timeout(30)`",
    "ratelimit": "`RateLimit(1e9)`, never waiting",
    "breaker": "`CircuitBreaker()`",
    "standard": "`standard()` (Timeout, Retry, CircuitBreaker, Timeout)",
    "aiohttp-retry": "aiohttp-retry `RetryClient` (retry only)",
    "aiolimiter": "aiolimiter around the call",
    "tenacity": "tenacity `@retry`",
    "stamina": "stamina `@retry`",
    "cache": "`Cache` hit, whole request",
    "prebuilt": "a middleware returning a prebuilt `ClientResponse` (ceiling of a hit)",
    "client-cache": "aiohttp-client-cache hit (memory), whole request",
    "bare-urls": "bare aiohttp, a new URL per request",
    "cache-miss": "`Cache` miss that is stored, a new URL per request",
}
WHOLE = frozenset({"cache", "prebuilt", "client-cache"})
"""Rows whose figure stands instead of a request, not on top of one."""


def _known() -> list[str]:
    return [*CONTENDERS, *PEERS]


def _caller(name: str) -> AbstractAsyncContextManager[Caller]:
    if name in PEERS:
        return REGISTRY[PEERS[name]].factory({})

    @asynccontextmanager
    async def session() -> AsyncIterator[Caller]:
        async with aiohttp.ClientSession(middlewares=CONTENDERS[name]()) as s:
            yield _session_caller(s)

    return session()


async def child(name: str, requests: int, url: str) -> None:
    """Make ``requests`` calls of contender ``name`` to ``url`` (the measured process)."""
    urls = [f"{url}?n={i}" for i in range(requests)] if name in NEW_URLS else [url] * requests
    async with _caller(name) as call:
        for u in urls:
            await call(u)


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


def _counted(name: str, requests: int, url: str) -> int:
    module = "resilient_http.bench.instructions"
    return callgrind("-m", module, "--child", name, "--requests", str(requests), "--url", url)


async def measure(names: Sequence[str], requests: int = 512) -> tuple[str, dict[str, float]]:
    """Instructions per request of each contender (the server's description, the figures).

    Raises ``ValueError`` for an unknown name and ``LookupError`` when valgrind is missing.
    """
    unknown = [n for n in names if n not in CONTENDERS and n not in PEERS]
    if unknown:
        raise ValueError(f"unknown contender(s) {', '.join(unknown)} for --instructions; "
                         f"known: {', '.join(_known())}")
    if shutil.which("valgrind") is None:
        raise LookupError(VALGRIND_MISSING)
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
    try:
        cores = asyncio.Semaphore(os.cpu_count() or 1)  # one valgrind per core

        async def count(name: str, calls: int) -> int:
            async with cores:
                return await asyncio.to_thread(_counted, name, calls, url)

        async def per_request(name: str) -> float:
            low, high = await asyncio.gather(count(name, requests), count(name, 5 * requests))
            return (high - low) / (4 * requests)

        pers = await asyncio.gather(*map(per_request, names))
    finally:
        await server.close()
    return ("nginx" if nginx else "MockServer process"), dict(zip(names, pers, strict=True))


def table(figures: dict[str, float]) -> list[str]:
    """Markdown rows: instructions per request and over the bare request (the row's own
    baseline: ``bare-urls`` for ``cache-miss``)."""
    lines = ["| contender | instructions per request | over bare |", "|---|---:|---:|"]
    for name, per in figures.items():
        base_name = "bare-urls" if name == "cache-miss" and "bare-urls" in figures else "bare"
        base = figures.get(base_name)
        if base is None or name in ("bare", "bare-urls"):
            over = ""
        elif name in WHOLE:  # the whole request, instead of a bare one
            over = f"instead: {per / base:.2f} x bare"
        else:
            over = f"{per - base:+,.0f}"
        lines.append(f"| {LABELS.get(name, name)} | {per:,.0f} | {over} |")
    return lines


def run(names: Sequence[str], requests: int) -> int:
    """Measure and print the table; the exit status."""
    try:
        print(f"callgrind, {requests} and {5 * requests} sequential requests per contender")
        server, figures = asyncio.run(measure(names, requests))
    except (LookupError, ValueError) as exc:
        print(f"resilient-http: {exc}", file=sys.stderr)
        return 2
    print(f"server: {server}; the difference per request, 1 in flight\n")
    print("\n".join(table(figures)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resilient_http.bench.instructions [NAME ...] [--requests N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT),
                        help=f"contenders (default: the README's table); known: "
                             f"{', '.join(_known())}")
    parser.add_argument("--requests", type=int, default=512, help="N (default 512)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(args.child, args.requests, args.url))
        return 0
    return run(args.names, args.requests)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
