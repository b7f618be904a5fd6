"""What the Cache tests share (helpers; the fixtures are in ``_cachefixtures``)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from resilient_http.cache import Cache
from resilient_http.events import Event


class Setup:
    def __init__(self, cache: Cache, session: aiohttp.ClientSession, events: list[Event]):
        self.cache = cache
        self.session = session
        self.events = events

    def names(self) -> list[str]:
        return [e.name for e in self.events]


async def get(session: Any, url: Any, **kwargs: Any) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with session.get(url, **kwargs) as resp:
        return resp.status, await resp.read(), resp


async def settle(condition: Any) -> None:
    """Let background work finish (a few event-loop turns, at most ~50 ms of real time)."""
    for _ in range(50):
        if condition():
            return
        await asyncio.sleep(0.001)
