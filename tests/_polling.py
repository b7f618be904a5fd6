"""Waiting in tests for something real I/O does, without sleeping for long."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], limit: float = 2.0, poll: float = 0.001) -> None:
    """Let real I/O run until ``predicate()`` holds (bounded by ``limit`` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(poll)
