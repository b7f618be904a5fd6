"""What the MockServer keeps about the requests it received: records and counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp.web_request import BaseRequest
from multidict import CIMultiDictProxy, MultiDictProxy
from yarl import URL

__all__ = ["RecordedRequest", "Recorder"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the :class:`MockServer` received it.

    Attributes:
        method: the HTTP method, upper case.
        path: the decoded path, without the query.
        url: the relative URL (path and query) as sent.
        headers: the request headers, case-insensitive and multi-valued.
        body: the raw body; ``b""`` when the request had none (not read for speed).
        time: arrival time on the server's clock, in seconds.
        peer_port: the client's TCP port, which identifies the connection (loopback), or
            ``None`` when unknown.
    """

    method: str
    path: str
    url: URL
    headers: CIMultiDictProxy[str]
    body: bytes
    time: float
    peer_port: int | None

    @property
    def query(self) -> MultiDictProxy[str]:
        """The query parameters, multi-valued and in order."""
        return self.url.query

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Recorder:
    """Records (optional), counters per path and status, and waiters on arrivals."""

    __slots__ = ("path_counts", "record", "requests", "status_counts", "total", "waiters")

    def __init__(self, record: bool) -> None:
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.total = 0
        self.path_counts: dict[str, int] = {}
        self.status_counts: dict[str, dict[str, int]] = {}
        self.waiters: list[asyncio.Future[None]] = []

    def arrived(self, request: BaseRequest, path: str, body: bytes, now: float) -> None:
        """Count (and record) one request, and wake whoever waits for arrivals."""
        self.total += 1
        self.path_counts[path] = self.path_counts.get(path, 0) + 1
        if self.record:
            transport = request.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            self.requests.append(RecordedRequest(
                request.method, path, request.rel_url, request.headers, body, now,
                peer[1] if isinstance(peer, tuple) else None,
            ))
        if self.waiters:
            for waiter in self.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.waiters.clear()

    def answered(self, path: str, key: str) -> None:
        """Count the outcome ``key`` (a status, ``"reset"`` or ``"truncated"``) of ``path``."""
        statuses = self.status_counts.get(path)
        if statuses is None:
            statuses = self.status_counts[path] = {}
        statuses[key] = statuses.get(key, 0) + 1

    def count(self, path: str | None) -> int:
        return self.total if path is None else self.path_counts.get(path, 0)

    def clear(self) -> None:
        self.requests.clear()
        self.total = 0
        self.path_counts.clear()
        self.status_counts.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "paths": {
                path: {"count": count, "statuses": dict(self.status_counts.get(path, {}))}
                for path, count in self.path_counts.items()
            },
            "cpu_time": time.process_time(),
            "recording": self.record,
        }

    async def wait_for(self, n: int, path: str | None, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.count(path) < n:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"MockServer got {self.count(path)} of {n} requests"
                    f"{f' for {path}' if path else ''} within {timeout}s"
                )
            waiter = loop.create_future()
            self.waiters.append(waiter)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter, remaining)

    def cancel_waiters(self) -> None:
        for waiter in self.waiters:
            waiter.cancel()
        self.waiters.clear()
