"""The Cache tests' fixtures (``pytest_plugins = ("_cachefixtures",)``): a fake clock, a
MockServer on it, and ``make(**options)`` building cache clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _cachetest import Setup

from resilient_http.cache import Cache
from resilient_http.events import Event
from resilient_http.testing import FakeClock, MockServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[MockServer]:
    async with MockServer(clock=clock) as server:
        yield server


@pytest.fixture
async def make(clock: FakeClock) -> AsyncIterator[Any]:
    """``make(**cache_options)``: a session whose only middleware is a new ``Cache``;
    ``make(..., inner=(layer, ...))`` puts layers inside it."""
    opened: list[Setup] = []

    def build(*, inner: tuple[Any, ...] = (), **options: Any) -> Setup:
        events: list[Event] = []
        cache = Cache(clock=clock, on_event=events.append, **options)
        session = aiohttp.ClientSession(middlewares=(cache, *inner))
        setup = Setup(cache, session, events)
        opened.append(setup)
        return setup

    yield build
    for setup in opened:
        await setup.session.close()
        await setup.cache.close()
