"""What the per-layer micro-benchmarks in this folder share.

The scripts run as ``python benchmarks/X.py`` from the repository root, so this folder is on
``sys.path`` and they import it as ``from _harness import ...``. The pass-through layer and the
no-op aiohttp middleware are the ``resilient-http bench`` engine's own
(:mod:`resilient_http.bench.contenders`), re-exported here.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiohttp import web
from yarl import URL

from resilient_http.bench.contenders import PassThrough, noop_mw

__all__ = [
    "FakeRequest",
    "Fetch",
    "PassThrough",
    "count_gc",
    "drive",
    "echo",
    "getter",
    "local_server",
    "noop_mw",
    "throughput",
]

Fetch = Callable[[], Awaitable[bytes]]


class FakeRequest:
    """Stands in for aiohttp.ClientRequest where a layer reads only ``.url`` and ``.method``."""

    __slots__ = ("url", "method")

    def __init__(self, url: URL) -> None:
        self.url = url
        self.method = "GET"


async def echo(req: Any) -> Any:
    """A handler that answers at once with its request."""
    return req


def drive(chain: Callable[[Any], Any], requests: Sequence[Any]) -> float:
    """µs per call of ``chain(request)`` for each request, run without an event loop (the
    coroutines never suspend)."""
    t0 = time.perf_counter()
    for req in requests:
        coro = chain(req)
        try:
            coro.send(None)
        except StopIteration:
            pass
        else:  # pragma: no cover
            raise RuntimeError("the chain suspended")
    return (time.perf_counter() - t0) / len(requests) * 1e6


async def throughput(fetch: Fetch, in_flight: int, duration: float) -> float:
    """Requests per second with ``in_flight`` workers fetching in a loop for ``duration``."""
    done = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await fetch()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - t0)


def getter(session: Any, url: Any) -> Fetch:
    """A fetch: GET ``url`` with ``session`` and read the body."""

    async def fetch() -> bytes:
        async with session.get(url) as resp:
            body: bytes = await resp.read()
            return body

    return fetch


@contextmanager
def count_gc() -> Iterator[list[int]]:
    """Collects garbage, then counts the garbage-collector runs (all generations) inside the
    block in ``runs[0]`` of the list it yields."""
    runs = [0]

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            runs[0] += 1

    gc.collect()
    gc.callbacks.append(count)
    try:
        yield runs
    finally:
        gc.callbacks.remove(count)


@asynccontextmanager
async def local_server(path: str, handler: Any) -> AsyncIterator[str]:
    """An aiohttp server in this process on a free loopback port, answering GET ``path`` with
    ``handler``; yields the URL of ``path``."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()
