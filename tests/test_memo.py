"""Decorator mode of Cache (``_memo.py``): memoized results, single flight, stale-*."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.cache import Cache
from resilient_http.events import Event
from resilient_http.testing import FakeClock, MockServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_decorator_memoizes_by_arguments(clock: FakeClock) -> None:
    calls: list[tuple[int, str]] = []

    @rh.resilient(Cache(ttl=10, clock=clock))
    async def lookup(n: int, *, unit: str = "m") -> str:
        calls.append((n, unit))
        return f"{n}{unit}"

    assert await lookup(1) == "1m"
    assert await lookup(1) == "1m"
    assert await lookup(1, unit="s") == "1s"
    assert await lookup(2) == "2m"
    assert calls == [(1, "m"), (1, "s"), (2, "m")]
    await clock.advance(11)
    assert await lookup(1) == "1m"
    assert len(calls) == 4


async def test_decorator_unhashable_arguments_and_key(clock: FakeClock) -> None:
    @rh.resilient(Cache(clock=clock))
    async def total(values: list[int]) -> int:
        return sum(values)

    with pytest.raises(TypeError, match="hashable arguments to memoize"):
        await total([1, 2])

    runs: list[int] = []

    @rh.resilient(Cache(clock=clock, key=lambda values: tuple(values)))
    async def total2(values: list[int]) -> int:
        runs.append(1)
        return sum(values)

    assert await total2([1, 2]) == await total2([1, 2]) == 3
    assert len(runs) == 1


async def test_decorator_single_flight_and_failures(clock: FakeClock) -> None:
    runs: list[int] = []
    gate = asyncio.Event()

    @rh.resilient(Cache(clock=clock))
    async def slow(n: int) -> int:
        runs.append(n)
        await gate.wait()
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        return n * 2

    tasks = [asyncio.create_task(slow(3)) for _ in range(20)]
    await asyncio.sleep(0)
    assert len(runs) == 1
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, RuntimeError) for r in results) == 1  # only the leader's own
    assert [r for r in results if not isinstance(r, Exception)] == [6] * 19
    assert await slow(3) == 6


async def test_decorator_stale_if_error(clock: FakeClock) -> None:
    fail = False

    @rh.resilient(Cache(ttl=1, stale_if_error=10, clock=clock))
    async def value() -> str:
        if fail:
            raise OSError("down")
        return "v"

    assert await value() == "v"
    fail = True
    await clock.advance(5)
    assert await value() == "v"
    await clock.advance(10)
    with pytest.raises(OSError):
        await value()


async def test_decorator_stale_while_revalidate(clock: FakeClock) -> None:
    version = 1
    cache = Cache(ttl=1, stale_while_revalidate=10, clock=clock)

    @rh.resilient(cache)
    async def value() -> int:
        return version

    assert await value() == 1
    version = 2
    await clock.advance(2)
    assert await value() == 1  # stale, refreshing
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not cache.tasks
    assert await value() == 2
    await cache.close()


async def test_decorator_does_not_memoize_a_client_response(
    mock_server: MockServer, clock: FakeClock
) -> None:
    server = mock_server
    events: list[Event] = []

    async with aiohttp.ClientSession() as session:

        @rh.resilient(Cache(clock=clock, on_event=events.append))
        async def fetch() -> aiohttp.ClientResponse:
            return await session.get(server.url("/ok"))

        for _ in range(2):
            resp = await fetch()
            assert await resp.read() == b"ok"
            resp.release()
    assert server.count("/ok") == 2
    assert [e.detail.get("reason", "")[:12] for e in events if e.name == "cache.not_stored"] == [
        "a ClientResp"
    ] * 2
