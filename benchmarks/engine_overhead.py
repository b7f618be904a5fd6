"""CPU cost of the middleware machinery alone, without network: µs per call.

Compares aiohttp's own middleware chain (build_client_middlewares) with N do-nothing
middlewares against one resilient_http Stack of N pass-through layers, calling a handler that
returns at once. Run: python benchmarks/engine_overhead.py
"""

from __future__ import annotations

import asyncio

from _harness import PassThrough, drive, echo, noop_mw
from aiohttp.client_middlewares import build_client_middlewares

import resilient_http as rh


async def main() -> None:
    n = 200_000
    chains = {
        "bare handler": echo,
        "1 aiohttp middleware": build_client_middlewares(echo, [noop_mw]),
        "5 aiohttp middlewares": build_client_middlewares(echo, [noop_mw] * 5),
        "Stack of 1 pass-through": build_client_middlewares(echo, [rh.Stack(PassThrough())]),
        "Stack of 5 pass-through": build_client_middlewares(
            echo, [rh.Stack(*(PassThrough() for _ in range(5)))]
        ),
        "Timeout(30) alone": build_client_middlewares(echo, [rh.Timeout(30, stream=True)]),
    }
    base = None
    for name, chain in chains.items():
        best = min(drive(chain, [None] * n) for _ in range(3))
        base = best if base is None else base
        print(f"{name:28s} {best:6.2f} µs/call  (+{best - base:5.2f} µs over bare)")


if __name__ == "__main__":
    asyncio.run(main())
