"""Per-request overhead of CircuitBreaker on an always-200 route, as ratios vs bare aiohttp.

Three measurements, in one run:

1. CPU of the layer's hooks alone (no network): µs per call through a Stack holding one
   CircuitBreaker, vs a Stack holding one do-nothing layer and vs the bare handler.
2. End to end against the MockServer in its own process (``/ok``): requests per second of a
   bare ``ClientSession``, of one no-op aiohttp middleware and a Stack of one do-nothing
   layer (what any middleware costs), and of ``CircuitBreaker()`` alone in ``middlewares=``
   and inside a ``Stack``, at 1 and at 64 requests in flight. Rounds are interleaved and the
   best round of each variant is kept, so machine noise hits every variant alike.
3. Garbage-collector runs per 1000 requests (bare vs breaker): the success path must create
   no reference cycles.

Run: python benchmarks/breaker_overhead.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from _harness import FakeRequest, PassThrough, count_gc, drive, echo, noop_mw
from aiohttp.client_middlewares import build_client_middlewares
from yarl import URL

import resilient_http as rh
from resilient_http.testing.process import MockServerProcess


async def cpu_section(n: int) -> None:
    print("1. CPU of the hooks alone (no network), µs per call")
    clock_breaker = rh.CircuitBreaker()
    chains = {
        "bare handler": echo,
        "Stack(PassThrough())": build_client_middlewares(echo, [rh.Stack(PassThrough())]),
        "Stack(CircuitBreaker())": build_client_middlewares(
            echo, [rh.Stack(clock_breaker)]
        ),
    }
    base = None
    for name, chain in chains.items():
        best = float("inf")
        for _ in range(3):
            # A fresh URL per request, as aiohttp builds one per request (origin not cached).
            reqs = [FakeRequest(URL("http://127.0.0.1:8080/ok")) for _ in range(n)]
            best = min(best, drive(chain, reqs))
        base = best if base is None else base
        print(f"   {name:28s} {best:6.2f} µs/call  (+{best - base:5.2f} µs over bare)")


async def run_requests(
    session: aiohttp.ClientSession, url: URL, n: int, inflight: int
) -> tuple[float, float]:
    """(requests per second, client CPU µs per request) for n GETs with `inflight` workers."""
    per_worker = n // inflight

    async def worker() -> None:
        for _ in range(per_worker):
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"unexpected {resp.status}")

    t0 = time.perf_counter()
    c0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    done = per_worker * inflight
    cpu = (time.process_time() - c0) / done * 1e6
    return done / (time.perf_counter() - t0), cpu


def session_for(variant: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=100)
    if variant == "bare aiohttp":
        return aiohttp.ClientSession(connector=connector)
    if variant == "1 no-op aiohttp middleware":
        return aiohttp.ClientSession(connector=connector, middlewares=(noop_mw,))
    if variant == "Stack(PassThrough())":
        return aiohttp.ClientSession(connector=connector, middlewares=(rh.Stack(PassThrough()),))
    if variant == "CircuitBreaker() alone":
        return aiohttp.ClientSession(connector=connector, middlewares=(rh.CircuitBreaker(),))
    if variant == "Stack(CircuitBreaker())":
        return aiohttp.ClientSession(
            connector=connector, middlewares=(rh.Stack(rh.CircuitBreaker()),)
        )
    raise ValueError(variant)


VARIANTS = [
    "bare aiohttp",
    "1 no-op aiohttp middleware",
    "Stack(PassThrough())",
    "CircuitBreaker() alone",
    "Stack(CircuitBreaker())",
]


async def e2e_section(url: URL, n: int, rounds: int) -> None:
    print(f"2. End to end, GET /ok on MockServerProcess, {n} requests per round, best of {rounds}")
    for inflight in (1, 64):
        best = dict.fromkeys(VARIANTS, 0.0)
        cpu = dict.fromkeys(VARIANTS, float("inf"))
        for r in range(rounds):
            k = r % len(VARIANTS)  # rotate the order from round to round
            for variant in VARIANTS[k:] + VARIANTS[:k]:
                async with session_for(variant) as session:
                    await run_requests(session, url, 200, min(inflight, 8))  # warm the pool
                    rps, us = await run_requests(session, url, n, inflight)
                    best[variant] = max(best[variant], rps)
                    cpu[variant] = min(cpu[variant], us)
        bare, bare_cpu = best["bare aiohttp"], cpu["bare aiohttp"]
        for variant in VARIANTS:
            rps = best[variant]
            print(
                f"   {inflight:2d} in flight  {variant:28s} {rps:7.0f} req/s"
                f" {rps / bare:6.3f}x bare"
                f"   client CPU {cpu[variant]:6.1f} µs/req ({cpu[variant] - bare_cpu:+5.1f})"
            )


async def gc_section(url: URL, n: int) -> None:
    print(f"3. Garbage-collector runs per 1000 requests ({n} requests, 16 in flight)")
    for variant in ("bare aiohttp", "CircuitBreaker() alone"):
        async with session_for(variant) as session:
            await run_requests(session, url, 200, 8)
            with count_gc() as runs:
                await run_requests(session, url, n, 16)
            print(f"   {variant:28s} {runs[0] * 1000 / n:6.2f} collections per 1000 requests")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    await cpu_section(100_000)
    async with MockServerProcess() as proc:
        url = proc.url("/ok")
        await e2e_section(url, args.requests, args.rounds)
        await gc_section(url, args.requests)


if __name__ == "__main__":
    asyncio.run(main())
