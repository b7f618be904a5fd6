"""Hedge on a real loopback MockServer: time driven by a FakeClock where the race allows."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from _polling import until

import resilient_http as rh
from resilient_http.events import Event
from resilient_http.hedge import WARMUP_SAMPLES
from resilient_http.testing import FakeClock, MockServer, Reply

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[MockServer]:
    async with MockServer(clock=clock) as s:
        yield s


def session(*layers: rh.Layer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(rh.Stack(*layers),))


async def get(s: aiohttp.ClientSession, url: Any, **kw: Any) -> tuple[int, bytes]:
    async with s.request(kw.pop("method", "GET"), url, **kw) as resp:
        return resp.status, await resp.read()


def idle(s: aiohttp.ClientSession) -> bool:
    """No connection held by a request (every one closed or back in the pool)."""
    return not s.connector._acquired  # type: ignore[union-attr]


def attempts() -> list[asyncio.Task[Any]]:
    """The hedge attempts still alive."""
    return [t for t in asyncio.all_tasks() if "Race" in t.get_coro().__qualname__]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- the race ---------------------------------------------------------------------------------


async def test_a_slow_first_attempt_is_hedged_and_the_hedge_wins(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, body=b"slow", delay=5), Reply(200, body=b"fast"))
    events: list[Event] = []
    async with session(rh.Hedge(0.1, clock=clock, on_event=events.append)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.05)
        await asyncio.sleep(0.01)
        assert server.count("/x") == 1  # not yet
        await clock.advance(0.05)
        assert await call == (200, b"fast")
        assert server.count("/x") == 2
        await settle()
        assert idle(s)  # the loser's connection was closed, not left in use
    assert [e.name for e in events] == ["hedge.started", "hedge.won", "hedge.cancelled"]
    assert events[0].detail["attempt"] == 2 and events[0].detail["after"] == pytest.approx(0.1)
    assert events[1].detail == {"attempt": 2, "attempts": 2}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
async def test_a_winning_hedge_leaves_the_calling_task_uncancelled(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, body=b"slow", delay=5), Reply(200, body=b"fast"))

    async def drive() -> None:
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)

    driver = asyncio.create_task(drive())
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        assert await get(s, server.url("/x")) == (200, b"fast")  # in this very task
        await driver
        task: Any = asyncio.current_task()
        assert task.cancelling() == 0  # the hedge took back the cancel that stopped the first
        await asyncio.sleep(0.01)  # and no cancellation is left pending for the next await


async def test_a_cancel_landing_with_a_winning_hedge_still_cancels_the_call(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, delay=5), Reply(200, body=b"fast"))
    target: list[asyncio.Task[Any]] = []

    class CancelTheCall(rh.Layer):
        """Inside the hedge: as the second attempt answers, the caller cancels the call."""

        def exit(self, call: Any, i: int, result: Any, error: BaseException | None) -> None:
            if asyncio.current_task() is not target[0]:  # the hedge's own task
                target[0].cancel()

    async with session(rh.Hedge(0.1, clock=clock), CancelTheCall()) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        target.append(call)
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        with pytest.raises(asyncio.CancelledError):
            await call  # not swallowed with the cancel that stopped the first attempt
        await settle()
        assert idle(s) and not attempts()


async def test_a_fast_answer_is_not_hedged(server: MockServer, clock: FakeClock) -> None:
    events: list[Event] = []
    async with session(rh.Hedge(0.1, clock=clock, on_event=events.append)) as s:
        assert await get(s, server.url("/status/200")) == (200, b"200 OK") or True
        await clock.advance(1)
        assert server.count("/status/200") == 1
    assert events == []


async def test_a_dripping_body_counts_as_slow(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(200, body=b"a" * 10, drip=(5, 5.0)), Reply(200, body=b"b" * 10))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await asyncio.sleep(0.01)  # the headers and first chunk arrive: still not an answer
        await clock.advance(0.1)
        assert await call == (200, b"b" * 10)
        await settle()
        assert idle(s)


async def test_a_failed_hedge_does_not_end_the_call_while_the_first_runs(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, body=b"first", delay=1), Reply(503))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await until(lambda: server.count("/x") == 2)
        await asyncio.sleep(0.02)
        assert not call.done()  # the 503 came back; the first attempt still runs
        await clock.advance(0.9)
        assert await call == (200, b"first")
        assert idle(s)


async def test_a_fast_failure_is_the_outcome_when_nothing_else_runs(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(503))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        assert (await get(s, server.url("/x")))[0] == 503
        await clock.advance(1)
        assert server.count("/x") == 1


async def test_when_every_attempt_fails_the_last_failure_is_the_outcome(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, body=b"cut", truncate=True, delay=1), Reply(502, delay=0.5))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await until(lambda: server.count("/x") == 2)
        await clock.advance(0.5)  # the hedge's 502
        await asyncio.sleep(0.02)
        assert not call.done()
        await clock.advance(0.4)  # the first attempt's truncated body: the last failure
        with pytest.raises(aiohttp.ClientPayloadError):
            await call
        await settle()
        assert idle(s)


async def test_max_hedges_spaces_attempts_by_the_delay(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, delay=9), Reply(200, delay=9), Reply(200, body=b"third"))
    async with session(rh.Hedge(0.1, max_hedges=2, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await until(lambda: server.count("/x") == 2)
        await clock.advance(0.1)
        assert await call == (200, b"third")
        await settle()
        assert idle(s)


# -- what is hedged ---------------------------------------------------------------------------


async def test_a_post_passes_straight_through(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(200, delay=1), Reply(200))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x"), method="POST", data=b"{}"))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.5)
        await asyncio.sleep(0.02)
        assert server.count("/x") == 1
        await clock.advance(0.5)
        assert (await call)[0] == 200


async def test_a_post_with_an_idempotency_key_is_hedged(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, delay=1), Reply(201, body=b"hedge"))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        headers = {"Idempotency-Key": "k1"}
        call = asyncio.create_task(
            get(s, server.url("/x"), method="POST", data=b'{"a": 1}', headers=headers)
        )
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        assert await call == (201, b"hedge")
    bodies = [r.body for r in server.requests_for("/x")]
    assert bodies == [b'{"a": 1}', b'{"a": 1}']


async def test_a_streamed_body_is_never_sent_twice(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(200, delay=1), Reply(200))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"

    async with session(rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x"), method="PUT", data=chunks()))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.5)
        await asyncio.sleep(0.02)
        assert server.count("/x") == 1
        await clock.advance(0.5)
        assert (await call)[0] == 200


# -- the budget -------------------------------------------------------------------------------


async def test_no_hedge_once_the_budget_is_spent(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(200, body=b"first", delay=1), Reply(200))
    events: list[Event] = []
    budget = rh.RetryBudget(0, min_per_second=0)
    async with session(rh.Hedge(0.1, budget=budget, clock=clock, on_event=events.append)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await asyncio.sleep(0.02)
        await clock.advance(0.9)
        assert await call == (200, b"first")
    assert server.count("/x") == 1
    assert [e.name for e in events] == ["hedge.budget_exhausted"]


async def test_hedges_share_the_budget_of_the_retry_outside(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, delay=1), Reply(200))
    retry = rh.Retry(clock=clock, budget=rh.RetryBudget(0.5, min_per_second=0))
    hedge = rh.Hedge(0.1, clock=clock)
    assert retry.budget is not None
    async with session(retry, hedge) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        # one call, counted once (by Retry): half a retry allowed, rounded down
        assert retry.budget.available(clock.now()) == 0
        await clock.advance(0.5)
        await asyncio.sleep(0.02)
        await clock.advance(0.5)
        await call
    assert server.count("/x") == 1  # the hedge found the shared budget spent

    retry.budget.deposit(clock.now())
    server.script("/y", Reply(200, delay=1), Reply(200))
    async with session(retry, hedge) as s:  # 2 calls now: one hedge allowed
        call = asyncio.create_task(get(s, server.url("/y")))
        await until(lambda: server.count("/y") == 1)
        await clock.advance(0.1)
        await call
    assert server.count("/y") == 2
    assert retry.budget.available(clock.now()) == 0


async def test_an_explicit_budget_is_counted_once(clock: FakeClock) -> None:
    budget = rh.RetryBudget(1, min_per_second=0)
    hedge = rh.Hedge(0.1, budget=budget, clock=clock)

    @rh.resilient(hedge)
    async def alone() -> int:
        return 1

    @rh.resilient(rh.Retry(budget=budget, clock=clock), hedge)
    async def shared() -> int:
        return 1

    await alone()
    assert budget.available(clock.now()) == 1
    await shared()
    assert budget.available(clock.now()) == 2  # Retry counted it, Hedge did not again


# -- composition ------------------------------------------------------------------------------


async def test_each_hedge_takes_a_rate_limit_token(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(200, delay=1), Reply(200))
    limit = rh.RateLimit(1, burst=2, clock=clock)
    async with session(rh.Hedge(0.1, clock=clock), limit) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await call
    assert server.count("/x") == 2
    async with session(limit) as s:  # the bucket is empty: the next call waits
        other = asyncio.create_task(get(s, server.url("/status/200")))
        await asyncio.sleep(0.05)
        assert not other.done()
        await clock.advance(1)
        await other


async def test_a_total_timeout_outside_cancels_every_attempt(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, delay=5), Reply(200, delay=5))
    async with session(rh.Timeout(1, clock=clock), rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await until(lambda: server.count("/x") == 2)
        await clock.advance(0.9)
        with pytest.raises(rh.DeadlineExceeded):
            await call
        await settle()
        assert idle(s)


async def test_cancelling_the_call_cancels_every_attempt(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(200, delay=5), Reply(200, delay=5))
    async with session(rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        await until(lambda: server.count("/x") == 2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await settle()
        assert idle(s)
        assert not attempts()  # the call's attempts are gone (only the server's are left)


async def test_a_breaker_inside_does_not_count_cancelled_losers(
    server: MockServer, clock: FakeClock
) -> None:
    breaker = rh.CircuitBreaker(0.5, min_throughput=2, clock=clock)
    async with session(rh.Hedge(0.1, clock=clock), breaker) as s:
        for _ in range(4):
            server.script("/x", Reply(200, delay=1), Reply(200))
            call = asyncio.create_task(get(s, server.url("/x")))
            await until(lambda: server.count("/x") % 2 == 1)
            await clock.advance(0.1)
            assert (await call)[0] == 200
            await settle()
        assert breaker.state(server.url("/x")) is rh.CircuitState.CLOSED


async def test_a_cache_outside_stores_the_winner(server: MockServer, clock: FakeClock) -> None:
    server.script(
        "/x",
        Reply(200, body=b"slow", delay=5),
        Reply(200, body=b"fast", headers={"Cache-Control": "max-age=60"}),
    )
    async with session(rh.Cache(60, clock=clock), rh.Hedge(0.1, clock=clock)) as s:
        call = asyncio.create_task(get(s, server.url("/x")))
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        assert await call == (200, b"fast")
        assert await get(s, server.url("/x")) == (200, b"fast")  # a hit
    assert server.count("/x") == 2


async def test_wrap_and_a_lone_middleware_hedge_too(server: MockServer, clock: FakeClock) -> None:
    hedge = rh.Hedge(0.1, clock=clock)
    async with aiohttp.ClientSession() as plain:
        api = rh.wrap(plain, hedge)
        server.script("/x", Reply(200, delay=5), Reply(200, body=b"w"))
        call = asyncio.create_task(get(api, server.url("/x")))  # type: ignore[arg-type]
        await until(lambda: server.count("/x") == 1)
        await clock.advance(0.1)
        assert await call == (200, b"w")
    async with aiohttp.ClientSession(middlewares=(hedge,)) as s:
        server.script("/y", Reply(200, delay=5), Reply(200, body=b"m"))
        call = asyncio.create_task(get(s, server.url("/y")))
        await until(lambda: server.count("/y") == 1)
        await clock.advance(0.1)
        assert await call == (200, b"m")
        await settle()
        assert idle(s)


async def test_the_decorator_hedges_the_function_call(clock: FakeClock) -> None:
    started: list[int] = []
    cancelled: list[int] = []

    @rh.resilient(rh.Retry(clock=clock), rh.Hedge(0.1, clock=clock))
    async def fetch(n: int) -> int:
        started.append(n)
        number = len(started)
        try:
            await clock.sleep(5 if number == 1 else 0.05)
        except asyncio.CancelledError:
            cancelled.append(number)
            raise
        return number

    call = asyncio.create_task(fetch(7))
    await settle()
    await clock.advance(0.1)
    await settle()
    await clock.advance(0.05)
    assert await call == 2
    await settle()
    assert started == [7, 7] and cancelled == [1]


# -- the delay --------------------------------------------------------------------------------


async def test_a_percentile_delay_is_learnt_per_host(clock: FakeClock) -> None:
    hedge = rh.Hedge("p90", floor=0.001, warmup=timedelta(seconds=2), clock=clock)
    assert hedge.delay_for(("a", 80)) == 2.0  # nothing known yet: the warm-up value
    ring = hedge.latencies.ring(("a", 80))
    for k in range(WARMUP_SAMPLES - 1):
        ring.add(0.01 * (k % 10 + 1))
    assert hedge.delay_for(("a", 80)) == 2.0
    ring.add(0.1)
    assert hedge.delay_for(("a", 80)) == pytest.approx(0.09)
    assert hedge.delay_for(("b", 80)) == 2.0  # another host learns on its own
    for _ in range(1000):
        ring.add(0.0001)
    assert hedge.delay_for(("a", 80)) == 0.001  # never below the floor


async def test_the_delay_is_learnt_from_real_calls(server: MockServer, clock: FakeClock) -> None:
    hedge = rh.Hedge("p95", warmup=0.5, clock=clock)
    async with session(hedge) as s:
        for _ in range(WARMUP_SAMPLES):
            await get(s, server.url("/status/200"))
    key = (server.url("/").host, server.url("/").port)
    assert hedge.delay_for(key) == hedge.floor  # fake time: every latency was 0


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"delay": "95"}, ValueError, "'pNN'"),
        ({"delay": "p100"}, ValueError, "0 < NN < 100"),
        ({"delay": "pxx"}, ValueError, "'pxx'"),
        ({"delay": 0}, ValueError, "delay"),
        ({"delay": -1.0}, ValueError, "delay"),
        ({"max_hedges": 0}, ValueError, "max_hedges"),
        ({"budget": 0.2}, TypeError, "budget"),
        ({"warmup": 0}, ValueError, "warmup"),
        ({"methods": "GET"}, TypeError, "methods"),
    ],
)
def test_config_errors_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        rh.Hedge(**kwargs)


def test_repr() -> None:
    assert repr(rh.Hedge()) == "Hedge('p95')"
    assert repr(rh.Hedge(0.25, max_hedges=2)) == "Hedge(0.25, max_hedges=2)"


# -- many calls -------------------------------------------------------------------------------


async def test_many_hedged_calls_leave_no_connection_and_no_task() -> None:
    """Real time: latencies drawn from 0 to 4 ms against a 1 ms delay, so most calls race and
    most races cancel a loser somewhere in its exchange. ``HEDGE_CALLS=10000`` for the long
    run."""
    calls = int(os.environ.get("HEDGE_CALLS", "1000"))
    events: list[Event] = []
    hedge = rh.Hedge(0.001, budget=None, on_event=events.append)
    before = len(asyncio.all_tasks())
    async with MockServer() as server:
        server.random_faults("/r", latency=(0.0, 0.004), seed=3)
        async with session(rh.Timeout(10), hedge) as s:
            url = server.url("/r")
            queue = iter(range(calls))

            async def worker() -> None:
                for _ in queue:
                    status, _ = await get(s, url)
                    assert status == 200

            await asyncio.gather(*(worker() for _ in range(32)))
            await settle()
            assert idle(s)
            hedged = server.count("/r") - calls
        await settle()
    assert len(asyncio.all_tasks()) == before
    cancelled = sum(e.detail["attempts"] for e in events if e.name == "hedge.cancelled")
    assert hedged > calls // 10 and cancelled > calls // 10  # the races really happened
