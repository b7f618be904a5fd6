"""CircuitBreaker on Redis: one circuit per key for every process, against a real server
(tests/_redis.py) and real HTTP servers (MockServer, in this process or its own)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.redis.breaker import REFRESH, STALE_AFTER, SharedCircuitBreaker
from resilient_http.testing import MockServer, MockServerProcess, Reply
from tests._redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
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


async def test_isolate_and_reset_act_fleet_wide(redis_url: str) -> None:
    async with (
        rh.RedisStore(redis_url) as s1,
        rh.RedisStore(redis_url) as s2,
        MockServer() as server,
    ):
        b1, b2 = breaker(s1), breaker(s2)
        async with aiohttp.ClientSession(middlewares=(b2,)) as c2:
            assert await get(c2, server.url("/ok")) == 200
            await b1.aisolate("api")
            assert b1.state("api") is rh.CircuitState.ISOLATED
            await asyncio.sleep(STALE_AFTER + 0.05)  # b2 re-reads before its next call
            with pytest.raises(rh.CircuitOpen) as info:
                async with c2.get(server.url("/ok")):
                    pass
            assert info.value.retry_in is None
            # the sync API schedules the write
            b1.reset("api")
            assert b1.state("api") is rh.CircuitState.CLOSED  # here at once
            deadline = time.monotonic() + 2
            while await get(c2, server.url("/ok")) != 200:  # there within a refresh
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            ttls = await keys_and_ttls(s1)
            assert ttls and all(t > 0 for t in ttls.values()), ttls
            # isolate() with no key: every circuit of every process
            await b1.aisolate()
            deadline = time.monotonic() + 2
            while await get(c2, server.url("/ok")) != "CircuitOpen":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await b1.areset()
            deadline = time.monotonic() + 2
            while await get(c2, server.url("/ok")) != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            ttls = await keys_and_ttls(s1)
            assert all(t > 0 for t in ttls.values()), ttls
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(b1.reset, "api")  # needs a running loop


async def timed(session: aiohttp.ClientSession, url: Any, bound: float) -> int | str:
    start = time.monotonic()
    result = await get(session, url)
    took = time.monotonic() - start
    assert took < bound, f"{url} took {took:.3f} s: {result}"
    return result


@pytest.mark.parametrize("on_error", ["local", "open", "closed"])
async def test_redis_killed_mid_run(redis_proc: RedisServer, on_error: str) -> None:
    seen: list[rh.Event] = []
    store = rh.RedisStore(redis_proc.url, on_error=on_error, on_event=seen.append)
    store.probe_interval = 0.2
    bound = store.socket_timeout + SLACK
    budget = rh.RetryBudget(0.5, min_per_second=0, store=store)
    retry = rh.Retry(attempts=2, backoff=rh.Backoff(0.01, cap=0.01), budget=budget)
    async with (
        store,
        MockServer() as server,
        aiohttp.ClientSession(middlewares=(breaker(store),)) as c,
        aiohttp.ClientSession(middlewares=(retry,)) as r,
    ):
        for _ in range(5):
            assert await timed(c, server.url("/ok"), 2.0) == 200
            assert await timed(r, server.url("/ok"), 2.0) == 200
        assert await timed(r, server.url("/status/503"), 2.0) == 503  # retried once
        redis_proc.kill()
        outcomes = set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            outcomes.add(await timed(c, server.url("/ok"), bound))
            await asyncio.sleep(0.02)
        assert any(e.name == "store.degraded" for e in seen)
        if on_error == "closed":
            assert outcomes == {200, "StoreUnavailable"}
            assert await timed(r, server.url("/status/503"), bound) == "StoreUnavailable"
        else:
            assert outcomes == {200}
            # a retry: from the local window (10 deposits, ratio 0.5), or let through
            assert await timed(r, server.url("/status/503"), bound) == 503
        redis_proc.restart()
        deadline = time.monotonic() + 3.0
        while not any(e.name == "store.recovered" for e in seen):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 2.0
        while await timed(c, server.url("/ok"), bound) != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        ttls = await keys_and_ttls(store)
        assert all(t > 0 for t in ttls.values()), ttls


# -- the retry budget ----------------------------------------------------------------------


async def test_budget_counts_the_fleets_requests_and_retries(redis_url: str) -> None:
    async with rh.RedisStore(redis_url) as s1, rh.RedisStore(redis_url) as s2:
        b1 = rh.RetryBudget(0.5, min_per_second=0, store=s1)
        b2 = rh.RetryBudget(0.5, min_per_second=0, store=s2)
        alone = rh.RetryBudget(0.5, min_per_second=0)
        for _ in range(10):
            b1.deposit(0.0)
            alone.deposit(0.0)
        await asyncio.sleep(0.3)  # flushed in the background (every 0.1 s)
        # b2 saw no request, yet may retry on b1's: 5 retries in all, whoever takes them
        taken = [await b.awithdraw(0.0) for _ in range(5) for b in (b2, b1)]
        assert taken.count(True) == 5
        assert taken[:5] == [True] * 5
        assert sum(alone.withdraw(0.0) for _ in range(10)) == 5
        # a refund gives one back, sent with the next flush
        b1.refund(0.0)
        await asyncio.sleep(0.3)
        assert await b2.awithdraw(0.0) is True
        assert await b2.awithdraw(0.0) is False
        ttls = await keys_and_ttls(s1)
        assert ttls and all(t > 0 for t in ttls.values()), ttls


async def test_budget_deposits_are_flushed_in_the_background(redis_url: str) -> None:
    async with rh.RedisStore(redis_url) as s1, rh.RedisStore(redis_url) as s2:
        b1 = rh.RetryBudget(0.5, min_per_second=0, store=s1)
        b2 = rh.RetryBudget(0.5, min_per_second=0, store=s2)
        for _ in range(4):
            b1.deposit(0.0)
        assert b1._slot_end == float("inf")  # the inline deposit only counts
        await asyncio.sleep(0.35)
        assert b1._fresh == 0
        assert [await b2.awithdraw(0.0) for _ in range(3)] == [True, True, False]
        assert b2.available(0.0) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"name": "x"}, "name needs a store"), ({"store": "redis://x"}, "store must be")],
)
def test_budget_store_arguments_are_checked(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        rh.RetryBudget(**kwargs)


# -- several OS processes against a MockServer process: the server's counts are the truth ----

CHILD = """
import asyncio, json, sys, time
import aiohttp
import resilient_http as rh

async def main(kind, redis_url, url, arg):
    counts = {}
    async with rh.RedisStore(redis_url, socket_timeout=1.0) as store:
        if kind == "breaker":
            layer = rh.CircuitBreaker(store=store, key="api", min_throughput=4, break_for=5)
        else:
            budget = rh.RetryBudget(0.5, min_per_second=0, store=store)
            layer = rh.Retry(attempts=10, backoff=rh.Backoff(0.001, cap=0.001), budget=budget)
        async with aiohttp.ClientSession(middlewares=(layer,)) as session:
            async def one():
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        return str(resp.status)
                except aiohttp.ClientError as exc:
                    return type(exc).__name__
            if kind == "breaker":  # until a wall-clock deadline, 5 calls at a time
                print("ready", flush=True)
                line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                while time.time() < float(line):
                    for r in await asyncio.gather(*(one() for _ in range(5))):
                        counts[r] = counts.get(r, 0) + 1
                    await asyncio.sleep(0.02)
            else:  # arg calls, one after the other
                for _ in range(int(arg)):
                    r = await one()
                    counts[r] = counts.get(r, 0) + 1
                await asyncio.sleep(0.3)  # the last deposits are flushed
    print(json.dumps(counts))

asyncio.run(main(*sys.argv[1:]))
"""


async def children(
    *argvs: tuple[str, ...], go: Callable[[], Awaitable[str]] | None = None
) -> list[dict[str, int]]:
    """Run the CHILD processes; with ``go``, once each printed ``ready``, send each the line
    ``go`` returns."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, *argv, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for argv in argvs
    ]
    if go is not None:
        for p in procs:
            assert p.stdout is not None
            assert await asyncio.wait_for(p.stdout.readline(), 60) == b"ready\n"
        line = (await go()).encode() + b"\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(line)
    outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    assert [p.returncode for p in procs] == [0] * len(procs)
    return [json.loads(out) for out, _ in outs]


async def test_one_probe_in_the_fleet_of_processes(redis_url: str) -> None:
    async with (
        rh.RedisStore(redis_url) as store,
        MockServerProcess(config={"routes": [
            {"path": "/x", "script": [{"status": 200, "delay": 1.5}]},
        ]}) as server,
    ):
        here = breaker(store, break_for=1.0)

        async def open_circuit() -> str:
            async with aiohttp.ClientSession(middlewares=(here,)) as c:
                for _ in range(4):
                    assert await get(c, server.url("/status/500")) == 500
            await until(lambda: here.state("api") is rh.CircuitState.OPEN)
            return str(time.time() + 1.0 + 1.0)  # the break, then less than the probe's 1.5 s

        argv = ("breaker", redis_url, str(server.url("/x")), "")
        results = await children(argv, argv, argv, go=open_circuit)
        stats = await server.stats()
        assert stats["paths"].get("/x", {}).get("count") == 1, (stats, results)
        assert sum(r.get("200", 0) for r in results) == 1, results
        assert all(r.get("CircuitOpen", 0) > 0 for r in results), results


async def test_two_processes_retries_are_capped_together(redis_url: str) -> None:
    async with MockServerProcess() as server:
        # one process's 20 requests succeed: the fleet has 20 requests in its window
        (first,) = await children(("budget", redis_url, str(server.url("/ok")), "20"))
        assert first == {"200": 20}
        # another's 4 fail: 10 attempts each, but 0.5 x 24 = 12 retries for the whole fleet
        # (alone, it would have had 0.5 x 4 = 2)
        (second,) = await children(("budget", redis_url, str(server.url("/status/503")), "4"))
        stats = await server.stats()
        assert stats["paths"]["/status/503"]["count"] == 4 + 12, (stats, second)


async def test_successes_and_deposits_cost_no_round_trip_each(redis_url: str) -> None:
    async with rh.RedisStore(redis_url) as store, MockServer() as server:
        retry = rh.Retry(budget=rh.RetryBudget(store=store))
        async with aiohttp.ClientSession(middlewares=(retry, breaker(store))) as c:
            assert await get(c, server.url("/ok")) == 200  # the first call reads the state
            await store.client.config_resetstat()
            start = time.monotonic()
            for _ in range(100):
                assert await get(c, server.url("/ok")) == 200
            took = time.monotonic() - start
            stats = await store.client.info("commandstats")
        trips = sum(stats.get(f"cmdstat_{n}", {}).get("calls", 0) for n in ("evalsha", "exists"))
        # per interval: a breaker sync and a global-isolation check (0.25 s), a budget flush
        # (0.1 s); never one per request
        bound = 3 + 2 * (took / REFRESH + 1) + (took / 0.1 + 1)
        assert trips <= bound, (trips, took, stats)
        assert trips < 100


async def test_redis_paused_a_call_waits_at_most_the_socket_timeout(
    redis_proc: RedisServer,
) -> None:
    seen: list[rh.Event] = []
    async with (
        rh.RedisStore(redis_proc.url, on_event=seen.append) as store,
        MockServer() as server,
    ):
        budget = rh.RetryBudget(0.5, min_per_second=0, store=store)
        retry = rh.Retry(attempts=2, backoff=rh.Backoff(0.01, cap=0.01), budget=budget)
        async with aiohttp.ClientSession(middlewares=(retry, breaker(store))) as c:
            assert await get(c, server.url("/ok")) == 200
            redis_proc.pause()
            try:
                await asyncio.sleep(STALE_AFTER + 0.05)  # the next call re-reads the state
                bound = store.socket_timeout + SLACK
                assert await timed(c, server.url("/ok"), bound) == 200  # on_error="local"
                assert await timed(c, server.url("/status/503"), bound) == 503
            finally:
                redis_proc.resume()
        assert [e.name for e in seen] == ["store.degraded"]
