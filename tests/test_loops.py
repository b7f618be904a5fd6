"""Layers shared across event loops (``asyncio.run`` after ``asyncio.run``, loops left
stopped) and across threads that each run their own loop: every layer either keeps its
guarantee or raises a clear ``RuntimeError`` (see the README, "Threads and event loops")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest
from _threads import ThreadServer, run_in_threads

import resilient_http as rh


async def _until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.005)


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


# -- RateLimit ------------------------------------------------------------------------------


def test_ratelimit_counts_held_on_a_stopped_loop_survive_a_new_loop() -> None:
    """Two calls in flight and one waiting on loop A, A stopped; a call on loop B must not be
    admitted past max_concurrency=2 (it waits, until its Timeout); when A runs again its calls
    finish and the counts come back to zero, never below."""
    rl = rh.RateLimit(1000, max_concurrency=2)
    with ThreadServer() as srv:
        key = ("http", "127.0.0.1", srv.port)
        old = asyncio.new_event_loop()
        try:

            async def start() -> tuple[aiohttp.ClientSession, list[asyncio.Task[int]]]:
                session = aiohttp.ClientSession(middlewares=(rl,))
                url = srv.url("/slow?s=0.5")
                tasks = [asyncio.create_task(_status(session, url)) for _ in range(3)]
                await _until(lambda: rl.in_flight(key) == 2 and rl.waiting(key) == 1)
                return session, tasks

            session, tasks = old.run_until_complete(start())  # A stops, its calls live on

            async def on_another_loop() -> int:
                async with aiohttp.ClientSession(middlewares=(rh.Timeout(0.3), rl)) as s:
                    with pytest.raises(rh.DeadlineExceeded):
                        await _status(s, srv.url("/ok"))
                return rl.in_flight(key)

            assert asyncio.run(on_another_loop()) == 2
            assert old.run_until_complete(asyncio.gather(*tasks)) == [200] * 3
            assert rl.in_flight(key) == 0 and rl.waiting(key) == 0
            old.run_until_complete(session.close())
        finally:
            old.close()
        assert srv.hits.get("ok", 0) == 0
        assert srv.max_in_flight <= 2


def test_ratelimit_on_three_threads_never_admits_more_than_max_concurrency() -> None:
    """Three threads, each its own asyncio.run, three calls each through one RateLimit with
    max_concurrency=2: never more than 2 at the server; a call that would have to wait while
    another thread's loop owns the key's waiting raises a RuntimeError naming RateLimit."""
    rl = rh.RateLimit(1000, max_concurrency=2, max_wait=2.0)
    with ThreadServer() as srv:
        key = ("http", "127.0.0.1", srv.port)

        def main(k: int) -> Callable[[], object]:
            async def run() -> list[object]:
                await asyncio.sleep(0.1 * k)
                async with aiohttp.ClientSession(middlewares=(rl,)) as s:
                    calls = [_status(s, srv.url("/slow?s=0.4")) for _ in range(3)]
                    return await asyncio.gather(*calls, return_exceptions=True)

            return run

        results = run_in_threads(main(0), main(1), main(2))
        assert srv.max_in_flight <= 2
        assert rl.in_flight(key) == 0 and rl.waiting(key) == 0
        outcomes = [o for per_loop in results for o in per_loop]
        assert all(
            o == 200 or (isinstance(o, RuntimeError) and "RateLimit" in str(o)) for o in outcomes
        ), outcomes
        assert outcomes.count(200) >= 3


def test_ratelimit_waiters_of_a_closed_loop_are_dropped_counts_kept() -> None:
    """A loop closed with a call in flight and a waiter never cancelled: the next loop drops the
    dead waiter, and the slot of the live call is only given back when that call ends."""
    rl = rh.RateLimit(1000, max_concurrency=1, max_wait=0.2)

    @rh.resilient(rl)
    async def hold(gate: asyncio.Event) -> str:
        await gate.wait()
        return "ok"

    old = asyncio.new_event_loop()
    gate = asyncio.Event()
    try:
        first = old.create_task(hold(gate))
        second = old.create_task(hold(gate))
        old.run_until_complete(asyncio.sleep(0.01))
        assert rl.in_flight(None) == 1 and rl.waiting(None) == 1
    finally:
        first._log_destroy_pending = False  # type: ignore[attr-defined]
        second._log_destroy_pending = False  # type: ignore[attr-defined]
        old.close()

    async def later() -> None:
        with pytest.raises(rh.RateLimitExceeded):  # the slot is still held: not admitted
            await asyncio.wait_for(hold(asyncio.Event()), 2.0)
        assert rl.waiting(None) == 0  # the dead waiter is gone

    asyncio.run(later())
    assert rl.in_flight(None) == 1


# -- Timeout --------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", ["alone", "in a Stack"])
def test_one_timeout_on_two_threads_enforces_both_deadlines(shared: str) -> None:
    """Two threads, each its own loop, one Timeout(0.5): both 3 s answers are cut at 0.5 s
    (the second thread's first call does not disarm the first thread's deadline)."""
    timeout = rh.Timeout(0.5)
    layer = timeout if shared == "alone" else rh.Stack(timeout, rh.Retry())
    with ThreadServer() as srv:

        def main(k: int) -> Callable[[], object]:
            async def run() -> object:
                await asyncio.sleep(0.15 * k)
                async with aiohttp.ClientSession(middlewares=(layer,)) as s:
                    started = time.monotonic()
                    with pytest.raises(rh.DeadlineExceeded):
                        await _status(s, srv.url("/slow?s=3"))
                    return time.monotonic() - started

            return run

        elapsed = run_in_threads(main(0), main(1))
    assert all(isinstance(e, float) and 0.45 < e < 1.5 for e in elapsed), elapsed


def test_timeout_forgets_the_state_of_closed_loops() -> None:
    timeout = rh.Timeout(5)

    @rh.resilient(timeout)
    async def call() -> str:
        return "ok"

    for _ in range(3):
        assert asyncio.run(call()) == "ok"
    assert len(timeout._loops) == 1  # the last loop's; the closed ones were dropped


def test_ratelimit_waiting_from_a_second_running_loop_raises_a_clear_error() -> None:
    rl = rh.RateLimit(1000, max_concurrency=1)
    with ThreadServer() as srv:
        key = ("http", "127.0.0.1", srv.port)

        async def owner() -> list[object]:
            async with aiohttp.ClientSession(middlewares=(rl,)) as s:
                calls = [_status(s, srv.url("/slow?s=0.6")) for _ in range(2)]
                return await asyncio.gather(*calls, return_exceptions=True)

        async def second() -> object:
            await _until(lambda: rl.waiting(key) == 1)  # the owner's loop waits on the key
            async with aiohttp.ClientSession(middlewares=(rl,)) as s:
                try:
                    return await _status(s, srv.url("/ok"))
                except RuntimeError as exc:
                    return exc

        first, other = run_in_threads(owner, second)
    assert first == [200, 200]
    assert isinstance(other, RuntimeError)
    assert "RateLimit" in str(other) and "give each thread its own RateLimit" in str(other)
    assert srv.hits.get("ok", 0) == 0 and srv.max_in_flight == 1
    assert rl.in_flight(key) == 0 and rl.waiting(key) == 0


# -- the layers safe to share: Retry (and its budget), CircuitBreaker, FieldMask, Stack ----


def test_retry_and_its_budget_shared_by_two_threads() -> None:
    """Each thread's calls get their own attempts; one budget caps the retries of both."""
    budget = rh.RetryBudget(ratio=0.5, min_per_second=0)
    retry = rh.Retry(attempts=3, backoff=rh.Backoff(0.01, cap=0.01), budget=budget)
    with ThreadServer() as srv:

        def main() -> object:
            async def run() -> list[object]:
                async with aiohttp.ClientSession(middlewares=(retry,)) as s:
                    ok = [await _status(s, srv.url("/ok")) for _ in range(10)]
                    failed = await asyncio.gather(
                        *(_status(s, srv.url("/fail")) for _ in range(4)),
                        return_exceptions=True,
                    )
                    return [*ok, *failed]

            return run

        results = run_in_threads(main(), main())
    for per_thread in results:
        assert per_thread[:10] == [200] * 10
        assert all(o == 503 or isinstance(o, rh.RetriesExhausted) for o in per_thread[10:])
    # 28 logical calls: at most 14 retries; 8 calls to /fail, up to 2 retries each.
    assert 8 <= srv.hits["fail"] <= 8 + 14
    assert srv.hits["fail"] - 8 <= 0.5 * 28


def test_circuit_breaker_shared_by_two_threads_opens_and_admits_one_probe() -> None:
    breaker = rh.CircuitBreaker(0.5, min_throughput=4, break_for=0.4, half_open_probes=1)
    with ThreadServer() as srv:
        url = srv.url("/fail")

        def main(k: int) -> object:
            async def run() -> tuple[list[object], list[object]]:
                async with aiohttp.ClientSession(middlewares=(breaker,)) as s:
                    first = [await _outcome(s, url) for _ in range(4)]
                    await asyncio.sleep(0.5 - 0.05 * k)  # the break is over: half-open
                    probes = await asyncio.gather(
                        *(_outcome(s, srv.url("/slow?s=0.3")) for _ in range(5))
                    )
                    return first, probes

            return run

        results = run_in_threads(main(0), main(1))
    firsts = [o for first, _ in results for o in first]
    assert firsts.count(503) >= 4 and "CircuitOpen" in firsts  # opened after 4 outcomes
    probes = [o for _, p in results for o in p]
    assert srv.hits.get("slow", 0) == 1  # one probe slot, for both threads
    assert probes.count(200) == 1 and probes.count("CircuitOpen") == 9


async def _outcome(session: aiohttp.ClientSession, url: str) -> object:
    try:
        return await _status(session, url)
    except rh.CircuitOpen:
        return "CircuitOpen"


def test_fieldmask_and_a_stack_shared_by_two_threads() -> None:
    stack = rh.Stack(rh.Timeout(5), rh.Retry(), rh.FieldMask(["id", "name"]))
    with ThreadServer() as srv:

        def main() -> object:
            async def run() -> list[int]:
                async with aiohttp.ClientSession(middlewares=(stack,)) as s:
                    return [await _status(s, srv.url("/ok")) for _ in range(20)]

            return run

        results = run_in_threads(main(), main())
        assert results == [[200] * 20] * 2
        assert srv.hits["ok"] == 40 and srv.queries["ok"] == "fields=id,name"


def test_paginate_and_poll_from_two_threads() -> None:
    strategy = rh.PageNumber()
    with ThreadServer() as srv:

        def main() -> object:
            async def run() -> tuple[list[str], object]:
                async with aiohttp.ClientSession(middlewares=(rh.Retry(),)) as s:
                    items = [x async for x in rh.paginate(s, srv.url("/items"), strategy)]
                    job = await rh.poll(s, srv.url("/job"), done={"done"}, status="status")
                    return items, job

            return run

        results = run_in_threads(main(), main())
    pages = [f"{p}.{k}" for p in (1, 2, 3) for k in range(3)]
    assert results == [(pages, {"status": "done", "id": 7})] * 2


# -- Cache ----------------------------------------------------------------------------------


def test_cache_reused_on_a_later_loop_keeps_its_entries() -> None:
    cache = rh.Cache(ttl=60)
    with ThreadServer() as srv:

        async def once() -> int:
            async with aiohttp.ClientSession(middlewares=(cache,)) as s:
                return await _status(s, srv.url("/ok"))

        assert asyncio.run(once()) == 200
        assert asyncio.run(once()) == 200
        assert srv.hits["ok"] == 1


def test_cache_from_a_second_running_loop_raises_a_clear_error() -> None:
    cache = rh.Cache(ttl=60)
    with ThreadServer() as srv:
        import threading

        served = threading.Event()
        done = threading.Event()

        async def owner() -> object:
            async with aiohttp.ClientSession(middlewares=(cache,)) as s:
                status = await _status(s, srv.url("/ok"))
                served.set()
                await asyncio.get_running_loop().run_in_executor(None, done.wait, 10)
                return status

        async def second() -> object:
            await asyncio.get_running_loop().run_in_executor(None, served.wait, 10)
            try:
                async with aiohttp.ClientSession(middlewares=(cache,)) as s:
                    return await _status(s, srv.url("/ok"))
            except RuntimeError as exc:
                return exc
            finally:
                done.set()

        first, other = run_in_threads(owner, second)
    assert first == 200
    assert isinstance(other, RuntimeError)
    assert "Cache" in str(other) and "give each thread its own Cache" in str(other)


def test_ratelimit_a_call_ending_in_one_thread_wakes_a_waiter_of_another() -> None:
    """Thread B holds the one slot; thread A's call waits for it (A's loop serves the key's
    waiting). B's call ends in B: A's waiter is served on A's loop at once."""
    rl = rh.RateLimit(1000, max_concurrency=1)
    with ThreadServer() as srv:
        key = ("http", "127.0.0.1", srv.port)

        async def holder() -> object:
            async with aiohttp.ClientSession(middlewares=(rl,)) as s:
                return await _status(s, srv.url("/slow?s=0.5"))

        async def waiter() -> object:
            await _until(lambda: rl.in_flight(key) == 1)
            async with aiohttp.ClientSession(middlewares=(rl,)) as s:
                started = time.monotonic()
                status = await asyncio.wait_for(_status(s, srv.url("/ok")), 5)
                return status, time.monotonic() - started

        held, (status, waited) = run_in_threads(holder, waiter)
    assert held == 200 and status == 200
    assert waited < 1.0  # served when the slot came free (~0.5 s), not later
    assert srv.max_in_flight == 1
