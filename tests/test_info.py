"""``rh.info(resp)``: where a response came from, and ``cache.stats()``; real MockServer,
FakeClock."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.backoff import Backoff
from resilient_http.testing import FakeClock, MockServer, Reply


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    """A MockServer on a FakeClock that jumps over every sleep (``clock`` below)."""
    async with MockServer(clock=FakeClock(autojump=True)) as s:
        yield s


@pytest.fixture
def clock(server: MockServer) -> FakeClock:
    return cast(FakeClock, server.clock)


async def fetch(session: aiohttp.ClientSession, url: Any) -> tuple[int, rh.ResponseInfo]:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status, rh.info(resp)


async def test_a_response_nothing_happened_to_carries_nothing(server: MockServer) -> None:
    async with aiohttp.ClientSession(middlewares=rh.standard()) as s, s.get(
        server.url("/ok")
    ) as resp:
        assert "_rh_info" not in vars(resp)  # nothing set, nothing allocated
        got = rh.info(resp)
    assert got == rh.ResponseInfo(cache=None, attempts=1, waited=0.0)
    assert not got.from_cache
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.attempts = 2  # type: ignore[misc]


async def test_cache_hit_and_stats(server: MockServer, clock: FakeClock) -> None:
    server.cacheable("/r", b"hello", cache_control="max-age=60")
    cache = rh.Cache(clock=clock)
    assert cache.stats() == rh.CacheStats(hits=0, misses=0, entries=0, bytes=0)
    async with aiohttp.ClientSession(middlewares=(cache,)) as s:
        assert await fetch(s, server.url("/r")) == (200, rh.ResponseInfo())
        status, got = await fetch(s, server.url("/r"))
        assert (status, got.cache, got.attempts, got.from_cache) == (200, "hit", 0, True)
        await fetch(s, server.url("/r"))
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 1, 1)
    assert stats.bytes is not None and stats.bytes > len(b"hello")
    assert stats.hit_ratio == pytest.approx(2 / 3)


async def test_revalidated_and_stale(server: MockServer, clock: FakeClock) -> None:
    server.cacheable("/r", b"body", etag="v1", cache_control="max-age=1")
    server.script("/s", Reply(200, body=b"good", headers={"Cache-Control": "max-age=1"}))
    cache = rh.Cache(clock=clock, stale_if_error=60)
    async with aiohttp.ClientSession(middlewares=(cache,)) as s:
        await fetch(s, server.url("/r"))
        await fetch(s, server.url("/s"))
        await clock.advance(2)
        status, got = await fetch(s, server.url("/r"))  # a 304 from the server
        assert (status, got.cache, got.attempts) == (200, "revalidated", 1)
        assert server.count("/r") == 2
        server.script("/s", Reply(503))
        status, got = await fetch(s, server.url("/s"))
        assert (status, got.cache, got.from_cache) == (200, "stale", True)
    assert cache.stats().misses == 4 and cache.stats().hits == 0  # every one asked the server


async def test_attempts_of_a_retried_call(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", 503, 503, Reply(200))
    server.script("/y", 503)
    retry = rh.Retry(attempts=3, clock=clock, backoff=Backoff(1.0, jitter="none"))
    async with aiohttp.ClientSession(middlewares=(retry,)) as s:
        assert await fetch(s, server.url("/x")) == (200, rh.ResponseInfo(attempts=3))
        assert await fetch(s, server.url("/y")) == (503, rh.ResponseInfo(attempts=3))


async def test_seconds_waited_for_a_token() -> None:
    clock = FakeClock()  # driven by hand: the rate limiter's timers are not sleeps
    async with MockServer(clock=clock) as server:
        server.script("/x", Reply(200), Reply(503), Reply(200))
        limit = rh.RateLimit(1, per=2.0, burst=1, clock=clock)
        retry = rh.Retry(attempts=3, clock=clock, backoff=Backoff(0.5, jitter="none"))
        async with aiohttp.ClientSession(middlewares=(rh.Stack(retry, limit),)) as s:
            assert await fetch(s, server.url("/x")) == (200, rh.ResponseInfo())  # no wait
            # The 503 waits 2 s for its token; the retry 0.5 s of backoff, then 1.5 s more.
            task = asyncio.create_task(fetch(s, server.url("/x")))
            while not task.done():
                await asyncio.sleep(0.005)  # real time, for the loopback I/O
                await clock.advance(0.25)
            status, got = task.result()
    assert (status, got.attempts) == (200, 2)
    assert got.waited == pytest.approx(3.5)
