"""Cost of Retry on the success path: throughput and garbage collections vs bare aiohttp.

One run, one machine, the MockServer in its own process on loopback, route ``/ok`` (always
200). For each client and each concurrency (1 and 64 requests in flight) it runs requests for
about a second, three times, and keeps the best: requests per second and the ratio to bare
aiohttp. Then, for each client, the garbage-collector runs (all generations, counted with
``gc.callbacks``) per 1000 requests at 64 in flight.

Clients:
  bare aiohttp             ClientSession()
  no-op aiohttp middleware ClientSession(middlewares=(noop,)): what any middleware costs
  rh.Retry()               ClientSession(middlewares=(rh.Retry(),))  (body read inside)
  rh.Retry(stream=True)    headers only, as aiohttp-retry does
  aiohttp-retry            RetryClient(retry_options=ExponentialRetry(attempts=4))
  tenacity                 AsyncRetrying(stop_after_attempt(4), wait_random_exponential) per call
  stamina                  stamina.retry_context(on=aiohttp.ClientError, attempts=4) per call

Run: python benchmarks/retry_overhead.py  (the [bench] extra for the peers)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
from _harness import Fetch, count_gc, drive, getter, noop_mw, throughput
from aiohttp.client_middlewares import build_client_middlewares

import resilient_http as rh
from resilient_http.testing.process import MockServerProcess

DURATION = 1.0
ROUNDS = 5
GC_REQUESTS = 20_000

async def gc_runs(fetch: Fetch, n: int = GC_REQUESTS, in_flight: int = 64) -> float:
    """Garbage-collector runs per 1000 requests."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await fetch()

    with count_gc() as runs:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return runs[0] * 1000 / n


async def clients(url: Any) -> tuple[list[Any], dict[str, Fetch]]:
    closers: list[Any] = []
    out: dict[str, Fetch] = {}
    bare = aiohttp.ClientSession()
    closers.append(bare)
    out["bare aiohttp"] = getter(bare, url)
    plain = aiohttp.ClientSession(middlewares=(noop_mw,))
    closers.append(plain)
    out["no-op aiohttp middleware"] = getter(plain, url)
    retry = aiohttp.ClientSession(middlewares=(rh.Retry(),))
    closers.append(retry)
    out["rh.Retry()"] = getter(retry, url)
    stream = aiohttp.ClientSession(middlewares=(rh.Retry(stream=True),))
    closers.append(stream)
    out["rh.Retry(stream=True)"] = getter(stream, url)
    try:
        from aiohttp_retry import ExponentialRetry, RetryClient
    except ImportError:
        print("aiohttp-retry is not installed: pip install -e '.[bench]'")
    else:
        rc = RetryClient(retry_options=ExponentialRetry(attempts=4))
        closers.append(rc)
        out["aiohttp-retry"] = getter(rc, url)
    try:
        import tenacity
    except ImportError:
        pass
    else:

        async def with_tenacity() -> bytes:
            async for attempt in tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(4),
                wait=tenacity.wait_random_exponential(0.1, max=10),
                retry=tenacity.retry_if_exception_type(aiohttp.ClientError),
                reraise=True,
            ):
                with attempt:
                    async with bare.get(url) as resp:
                        resp.raise_for_status()
                        return await resp.read()
            raise AssertionError("unreachable")

        out["tenacity"] = with_tenacity
    try:
        import stamina
    except ImportError:
        pass
    else:

        async def with_stamina() -> bytes:
            async for attempt in stamina.retry_context(on=aiohttp.ClientError, attempts=4):
                with attempt:
                    async with bare.get(url) as resp:
                        resp.raise_for_status()
                        return await resp.read()
            raise AssertionError("unreachable")

        out["stamina"] = with_stamina
    for name, fetch in out.items():
        assert await fetch() == b"ok", name
    return closers, out


async def main() -> None:
    async with MockServerProcess() as server:
        closers, fetches = await clients(server.url("/ok"))
        results: dict[tuple[str, int], float] = {}
        gcs: dict[str, float] = {}
        try:
            for in_flight in (1, 64):
                for fetch in fetches.values():
                    await throughput(fetch, in_flight, 0.2)  # warm-up
                for _ in range(ROUNDS):  # interleaved, so background noise hits all alike
                    for name, fetch in fetches.items():
                        rate = await throughput(fetch, in_flight, DURATION)
                        results[name, in_flight] = max(results.get((name, in_flight), 0), rate)
            for name, fetch in fetches.items():
                gcs[name] = await gc_runs(fetch)
        finally:
            for c in closers:
                await c.close()
    print(
        f"aiohttp {aiohttp.__version__}, Python {sys.version.split()[0]}, best of {ROUNDS} x "
        f"{DURATION:g} s, MockServer in its own process on loopback, route /ok (always 200)"
    )
    print(f"{'client':24s} {'in flight':>9s} {'req/s':>9s} {'vs bare':>8s} {'µs/req':>8s}")
    for in_flight in (1, 64):
        bare = results["bare aiohttp", in_flight]
        for name in fetches:
            rate = results[name, in_flight]
            print(f"{name:24s} {in_flight:9d} {rate:9.0f} {rate / bare:7.3f}x {1e6 / rate:8.1f}")
    print(f"\ngarbage-collector runs per 1000 requests ({GC_REQUESTS} requests, 64 in flight)")
    for name, runs in gcs.items():
        print(f"{name:24s} {runs:6.2f}")
    print("\nCPU of the middleware alone (no network; handler returns a read response at once)")
    for name, us in engine_cost().items():
        print(f"{name:24s} {us:6.2f} µs/call")


class _Response:
    """Stands in for a ClientResponse whose body is already read (CPU measurement only)."""

    status = 200

    async def read(self) -> bytes:
        return b"ok"


def engine_cost(n: int = 200_000) -> dict[str, float]:
    """µs per call of each middleware around a handler that answers at once."""
    response = _Response()

    async def handler(req: Any) -> Any:
        return response

    chains = {
        "bare handler": handler,
        "1 no-op aiohttp middleware": build_client_middlewares(handler, [noop_mw]),
        "rh.Retry()": build_client_middlewares(handler, [rh.Retry()]),
        "rh.Retry(budget=None)": build_client_middlewares(handler, [rh.Retry(budget=None)]),
    }
    return {name: min(drive(chain, [None] * n) for _ in range(3)) for name, chain in chains.items()}


if __name__ == "__main__":
    asyncio.run(main())
