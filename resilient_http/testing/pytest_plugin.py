"""pytest fixtures for the test kit.

Installing resilient-http registers this module with pytest (a ``pytest11`` entry point), so
the fixtures are there in every test; nothing to add to ``conftest.py``. Listing it in
``pytest_plugins`` as before still works (it is loaded once). The async fixtures need
``pytest-asyncio``; without it they fail with a message saying so, and the rest of pytest is
untouched.

Fixtures (all function scope):

* ``mock_server``: a started :class:`MockServer` on the loop's clock, closed afterwards.
* ``fake_clock``: a fresh :class:`FakeClock` at time 0.
* ``mock_server_factory``: ``await mock_server_factory(clock=..., record=...)`` starts one
  more server with those :class:`MockServer` arguments; all are closed afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

from resilient_http.testing.clock import FakeClock

if TYPE_CHECKING:
    from resilient_http.testing.server import MockServer

__all__ = ["fake_clock", "mock_server", "mock_server_factory"]

_F = TypeVar("_F", bound=Callable[..., Any])
_NO_ASYNCIO = "the {} fixture needs pytest-asyncio (pip install pytest-asyncio)"

def _needs_asyncio(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Stands in for ``pytest_asyncio.fixture`` when it is not installed."""

    def missing() -> None:
        pytest.fail(_NO_ASYNCIO.format(fn.__name__), pytrace=False)

    missing.__name__ = missing.__qualname__ = fn.__name__
    missing.__doc__ = fn.__doc__
    fixture: Callable[..., Any] = pytest.fixture(missing)
    return fixture


def _async_fixture(fn: _F) -> _F:
    try:
        import pytest_asyncio
    except ImportError:  # registered for every pytest run: never break one without asyncio
        return cast(_F, _needs_asyncio(fn))
    return cast(_F, pytest_asyncio.fixture(fn))


@_async_fixture
async def mock_server() -> AsyncIterator[MockServer]:
    """A started :class:`MockServer` (loop clock, recording on), closed after the test."""
    from resilient_http.testing.server import MockServer  # aiohttp.web: only when used

    async with MockServer() as server:
        yield server


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` at time ``0.0`` without autojump."""
    return FakeClock()


@_async_fixture
async def mock_server_factory() -> AsyncIterator[Callable[..., Awaitable[MockServer]]]:
    """An async factory of started :class:`MockServer`; every one is closed afterwards."""
    from resilient_http.testing.server import MockServer

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
