"""CircuitBreaker on Redis: one circuit per key for every process, against a real server
(tests/_redis.py) and real HTTP servers (MockServer, in this process or its own)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.redis.breaker import REFRESH, STALE_AFTER, SharedCircuitBreaker
from resilient_http.testing import MockServer, Reply

SLACK = 0.5  # scheduling slack on a shared 2-core machine, seconds


def breaker(store: rh.RedisStore, **kw: Any) -> rh.CircuitBreaker:
    kw.setdefault("min_throughput", 4)
    kw.setdefault("break_for", 0.5)
    return rh.CircuitBreaker(store=store, key="api", **kw)


async def get(session: aiohttp.ClientSession, url: Any) -> int | str:
    """The status, or the name of the error."""
    try:
        async with session.get(url) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientError as exc:
        return type(exc).__name__


async def until(predicate: Any, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def keys_and_ttls(store: rh.RedisStore) -> dict[str, int]:
    found = [k async for k in store.client.scan_iter(match=f"{store.prefix}:*")]
    return {k.decode(): await store.client.pttl(k) for k in found}


def test_store_makes_the_shared_kind_and_memory_stays_plain(redis_url: str) -> None:
    store = rh.RedisStore(redis_url)
    assert type(breaker(store)) is SharedCircuitBreaker
    assert type(rh.CircuitBreaker()) is rh.CircuitBreaker
    with pytest.raises(TypeError, match="store"):
        SharedCircuitBreaker(store="redis://x")  # type: ignore[arg-type]


async def test_open_state_is_seen_by_a_second_store(redis_url: str) -> None:
    async with (
        rh.RedisStore(redis_url) as s1,
        rh.RedisStore(redis_url) as s2,
        MockServer() as server,
    ):
        server.script("/x", 500)
        b1, b2 = breaker(s1, break_for=5), breaker(s2, break_for=5)
        async with (
            aiohttp.ClientSession(middlewares=(b1,)) as c1,
            aiohttp.ClientSession(middlewares=(b2,)) as c2,
        ):
            # two failures from each process: 4 in the fleet's window opens it
            for c in (c1, c2, c1, c2):
                assert await get(c, server.url("/x")) == 500
            await until(lambda: b2.state("api") is rh.CircuitState.OPEN)  # the 4th's sync
            # the other process re-reads a state older than STALE_AFTER before a call
            await asyncio.sleep(STALE_AFTER + 0.05)
            before = server.count("/x")
            assert await get(c1, server.url("/x")) == "CircuitOpen"
            assert b1.state("api") is rh.CircuitState.OPEN
            # a third process that never called: re-reads the state before its first call
            b3 = breaker(s2, break_for=5)
            async with aiohttp.ClientSession(middlewares=(b3,)) as c3:
                assert await get(c3, server.url("/x")) == "CircuitOpen"
            assert server.count("/x") == before
            ttls = await keys_and_ttls(s1)
            assert ttls and all(t > 0 for t in ttls.values()), ttls


async def test_one_probe_in_the_fleet_two_stores_racing(redis_url: str) -> None:
    async with (
        rh.RedisStore(redis_url) as s1,
        rh.RedisStore(redis_url) as s2,
        MockServer() as server,
    ):
        server.script("/x", *[500] * 4, Reply(200, delay=0.3))
        b1, b2 = breaker(s1, break_for=0.3), breaker(s2, break_for=0.3)
        async with (
            aiohttp.ClientSession(middlewares=(b1,)) as c1,
            aiohttp.ClientSession(middlewares=(b2,)) as c2,
        ):
            for _ in range(4):
                await get(c1, server.url("/x"))
            await asyncio.sleep(0.05)
            assert await get(c2, server.url("/x")) == "CircuitOpen"  # learnt at its first read
            await asyncio.sleep(0.4)  # the break is over: half-open
            server.clear()
            results = await asyncio.gather(
                *(get(c, server.url("/x")) for _ in range(10) for c in (c1, c2))
            )
            assert server.count("/x") == 1, results
            assert results.count(200) == 1
            assert results.count("CircuitOpen") == 19
            # the probe succeeded: closed for every process
            await asyncio.sleep(REFRESH + 0.1)
            assert await get(c1, server.url("/x")) == 200
            assert await get(c2, server.url("/x")) == 200
