"""pytest fixtures for the test kit.

Enable with ``pytest_plugins = ["resilient_http.testing.pytest_plugin"]`` in a
``conftest.py``. Needs ``pytest-asyncio``.

Fixtures (all function scope):

* ``mock_server``: a started :class:`MockServer` on the loop's clock, closed afterwards.
* ``fake_clock``: a fresh :class:`FakeClock` at time 0.
* ``mock_server_factory``: ``await mock_server_factory(clock=..., record=...)`` starts one
  more server with those :class:`MockServer` arguments; all are closed afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from resilient_http.testing.clock import FakeClock
from resilient_http.testing.server import MockServer

__all__ = ["fake_clock", "mock_server", "mock_server_factory"]


@pytest_asyncio.fixture
async def mock_server() -> AsyncIterator[MockServer]:
    """A started :class:`MockServer` (loop clock, recording on), closed after the test."""
    async with MockServer() as server:
        yield server


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` at time ``0.0`` without autojump."""
    return FakeClock()


@pytest_asyncio.fixture
async def mock_server_factory() -> AsyncIterator[Callable[..., Awaitable[MockServer]]]:
    """An async factory of started :class:`MockServer`; every one is closed afterwards."""
    servers: list[MockServer] = []

    async def start(**kwargs: Any) -> MockServer:
        server = MockServer(**kwargs)
        await server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()
