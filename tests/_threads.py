"""A loopback HTTP server on its own event loop in its own thread, and a helper that runs
coroutines on several threads at once, each thread in its own ``asyncio.run``: what tests of
layers shared across threads and event loops need (the clients' loops never serve)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


class ThreadServer:
    """``/slow?s=SECONDS`` answers 200 after that many real seconds; ``/ok`` at once;
    ``/fail`` 503 at once; ``/items?page=N`` three items for pages 1 to 3, then none;
    ``/job`` a finished job. Counts requests per path, in flight and their maximum; the
    query of the last request per path is in ``queries``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.in_flight = 0
        self.max_in_flight = 0
        self.hits: dict[str, int] = {}
        self.queries: dict[str, str] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        with self._lock:
            self.hits[name] = self.hits.get(name, 0) + 1
            self.queries[name] = request.query_string
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if name == "slow":
                await asyncio.sleep(float(request.query.get("s", "1")))
            if name == "fail":
                return web.Response(status=503, text="down")
            if name == "items":
                page = int(request.query.get("page", "1"))
                return web.json_response([f"{page}.{k}" for k in range(3)] if page <= 3 else [])
            if name == "job":
                return web.json_response({"status": "done", "id": 7})
            return web.json_response({"path": name})
        finally:
            with self._lock:
                self.in_flight -= 1


def run_in_threads(*mains: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run each coroutine function in its own thread and ``asyncio.run``, all at once; return
    their results (or the exceptions they raised), in order."""
    results: list[Any] = [None] * len(mains)

    def run(k: int) -> None:
        try:
            results[k] = asyncio.run(mains[k]())  # type: ignore[arg-type]
        except BaseException as exc:  # reported to the test, which asserts on it
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(mains))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
