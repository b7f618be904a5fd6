"""Fixtures for tests whose time runs on an autojumping FakeClock (``pytest_plugins =
("_autojump",)``): ``clock``, and ``server``, a MockServer on that clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from resilient_http.testing import FakeClock, MockServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[MockServer]:
    async with MockServer(clock=clock) as s:
        yield s
