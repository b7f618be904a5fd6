"""CPU cost of the middleware machinery alone, without network: µs per call.

Compares aiohttp's own middleware chain (build_client_middlewares) with N do-nothing
middlewares against one resilient_http Stack of N pass-through layers, calling a handler that
returns at once. Run: python benchmarks/engine_overhead.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.client_middlewares import build_client_middlewares

import resilient_http as rh


class PassThrough(rh.Layer):
    """A layer with before and after hooks that do nothing (not skipped by the engine)."""

    __slots__ = ()

    def enter(self, call: Any, i: int) -> None:
        return None

    def exit(self, call: Any, i: int, result: Any, error: BaseException | None) -> None:
        return None


async def noop_mw(req: Any, handler: Any) -> Any:
    return await handler(req)


async def handler(req: Any) -> Any:
    return req


def drive(chain: Any, n: int) -> float:
    """Run `chain(None)` n times without an event loop (the coroutines never suspend)."""
    t0 = time.perf_counter()
    for _ in range(n):
        coro = chain(None)
        try:
            coro.send(None)
        except StopIteration:
            pass
        else:  # pragma: no cover
            raise RuntimeError("the chain suspended")
    return (time.perf_counter() - t0) / n * 1e6


async def main() -> None:
    n = 200_000
    chains = {
        "bare handler": handler,
        "1 aiohttp middleware": build_client_middlewares(handler, [noop_mw]),
        "5 aiohttp middlewares": build_client_middlewares(handler, [noop_mw] * 5),
        "Stack of 1 pass-through": build_client_middlewares(handler, [rh.Stack(PassThrough())]),
        "Stack of 5 pass-through": build_client_middlewares(
            handler, [rh.Stack(*(PassThrough() for _ in range(5)))]
        ),
        "Timeout(30) alone": build_client_middlewares(handler, [rh.Timeout(30, stream=True)]),
    }
    base = None
    for name, chain in chains.items():
        best = min(drive(chain, n) for _ in range(3))
        base = best if base is None else base
        print(f"{name:28s} {best:6.2f} µs/call  (+{best - base:5.2f} µs over bare)")


if __name__ == "__main__":
    asyncio.run(main())
