"""RateLimit: fair token buckets per key, bounded waits, priorities, adaptation to the
server's own limits. Time is a FakeClock; requests go to a real MockServer on loopback."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import pytest
from _polling import until as _until

import resilient_http as rh
from resilient_http._clock import LoopClock
from resilient_http._middleware import Call
from resilient_http.ratelimit import MemoryStore, RateLimit, priority
from resilient_http.testing import FakeClock, MockServer, Reply


async def until(predicate: Callable[[], bool]) -> None:
    """Let real I/O run until ``predicate()`` holds (polls every 0.2 ms, for 5 s at most)."""
    await _until(predicate, limit=5.0, poll=0.0002)


def origin_key(server: MockServer) -> tuple[str, str, int]:
    url = server.url("/")
    assert url.host is not None and url.port is not None
    return (url.scheme, url.host, url.port)


async def drive(
    clock: FakeClock,
    tasks: list[asyncio.Task[Any]],
    settled: Callable[[], bool] = lambda: True,
    step: float = 0.01,
    limit: float = 60.0,
) -> None:
    """Advance fake time in steps until every task is done; before each step, wait (real
    time, bounded) for ``settled()`` so real I/O catches up with fake time."""
    start = clock.now()
    while not all(t.done() for t in tasks):
        await until(lambda: settled() or all(t.done() for t in tasks))
        await clock.advance(step)
        assert clock.now() - start < limit, "took too long in fake time"
    for t in tasks:
        t.result()


def recording_limit(
    rate: float, **options: Any
) -> tuple[FakeClock, RateLimit, Callable[[Any], Awaitable[None]], list[Any]]:
    """A RateLimit on a fresh FakeClock, and a call through it that appends its argument to
    the returned list once it is let through."""
    clock = FakeClock()
    rl = RateLimit(rate, clock=clock, **options)
    seen: list[Any] = []

    @rh.resilient(rl)
    async def call(arg: Any) -> None:
        seen.append(arg)

    return clock, rl, call, seen


async def arrive_in_order(calls: Iterable[Awaitable[None]]) -> list[asyncio.Task[None]]:
    """Start each call as a task, letting each one reach the queue before the next starts."""
    tasks = []
    for c in calls:
        tasks.append(asyncio.ensure_future(c))
        await asyncio.sleep(0)
    return tasks


async def cancel_all(tasks: list[asyncio.Task[Any]], clock: FakeClock, rl: RateLimit) -> None:
    """Cancel the tasks; then nobody may wait and no timer may be left behind."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert rl.waiting(None) == 0
    assert clock.pending() == 0


def start_callers(
    session: aiohttp.ClientSession, url: Any, requests: int, callers: int
) -> tuple[list[asyncio.Task[None]], list[int]]:
    """Start ``callers`` tasks that share ``requests`` GETs of ``url`` between them; the
    returned list collects each response's status as it comes."""
    statuses: list[int] = []
    left = [requests]

    async def caller() -> None:
        while left[0] > 0:
            left[0] -= 1
            async with session.get(url) as resp:
                statuses.append(resp.status)

    return [asyncio.create_task(caller()) for _ in range(callers)], statuses


def queued_with_none_in_flight(
    rl: RateLimit, key: Any, tasks: list[asyncio.Task[None]]
) -> Callable[[], bool]:
    """For ``drive``: settled once nothing is in flight and every unfinished task waits."""
    return lambda: (
        rl.in_flight(key) == 0 and rl.waiting(key) == sum(not t.done() for t in tasks)
    )


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"rate": 0}, ValueError, "rate"),
        ({"rate": -1}, ValueError, "rate"),
        ({"rate": float("nan")}, ValueError, "rate"),
        ({"rate": "10"}, TypeError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"rate": 10, "per": 0}, ValueError, "per"),
        ({"rate": 10, "burst": 0.5}, ValueError, "burst"),
        ({"rate": 0.5}, ValueError, "burst"),
        ({"rate": 10, "key": "host"}, TypeError, "key"),
        ({"rate": 10, "max_wait": -1}, ValueError, "max_wait"),
        ({"rate": 10, "adaptive": 1}, TypeError, "adaptive"),
        ({"rate": 10, "max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"rate": 10, "max_concurrency": 2.5}, TypeError, "max_concurrency"),
        ({"rate": 10, "recovery": 0}, ValueError, "recovery"),
        ({"rate": 10, "max_pause": "1m"}, TypeError, "max_pause"),
        ({"rate": 10, "store": object()}, TypeError, "store"),
        ({"rate": 10, "clock": object()}, TypeError, "clock"),
        ({"rate": 10, "on_event": [1]}, TypeError, "on_event"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        RateLimit(**kwargs)


def test_defaults_and_repr() -> None:
    rl = RateLimit(10)
    assert (rl.rate, rl.per, rl.burst, rl.max_wait, rl.adaptive) == (10, 1.0, 10, None, True)
    assert rl.max_concurrency is None
    assert repr(rl) == "RateLimit(10)"
    assert "burst=1" in repr(RateLimit(5, per=2, burst=1, max_wait=0.5, max_concurrency=3))
    with pytest.raises(ValueError, match="urgent"):
        priority("high")


# -- the fast path ------------------------------------------------------------------------


async def test_a_free_token_is_taken_synchronously_and_a_wait_is_an_awaitable() -> None:
    clock = FakeClock()
    rl = RateLimit(1, clock=clock)

    async def fn() -> None: ...

    call: Call = [None, fn, (), None, None, None]  # decorator mode, one layer: slot 5
    assert rl.enter(call, 5) is None  # no await on the fast path
    assert rl.in_flight(None) == 1
    rl.exit(call, 5, None, None)
    step = rl.enter(call, 5)
    assert step is not None and hasattr(step, "__await__")
    waiting = asyncio.ensure_future(step)  # type: ignore[arg-type]
    await clock.advance(0.999)
    assert not waiting.done()
    await clock.advance(0.001)
    assert waiting.done()
    assert rl.in_flight(None) == 1


# -- acceptance: burst then spread ---------------------------------------------------------


async def test_burst_then_spread_and_no_window_exceeds_the_bucket() -> None:
    """RateLimit(20, per=1) and 40 concurrent requests: 20 at once, the rest spread over the
    next second; no 100 ms window carries more than the bucket allows (burst + rate*0.1)."""
    clock = FakeClock()
    rl = RateLimit(20, per=1, clock=clock)
    async with (
        MockServer(clock=clock) as server,
        aiohttp.ClientSession(middlewares=(rl,)) as session,
    ):
        key = origin_key(server)

        async def one() -> int:
            async with session.get(server.url("/ok")) as resp:
                return resp.status

        tasks = [asyncio.create_task(one()) for _ in range(40)]
        await drive(
            clock,
            tasks,
            settled=lambda: (
                rl.in_flight(key) == 0 and rl.waiting(key) == sum(not t.done() for t in tasks)
            ),
            step=0.01,
        )
        times = sorted(r.time for r in server.requests_for("/ok"))
    assert len(times) == 40
    assert times[:20] == [0.0] * 20
    assert times[20] > 0.0
    assert times[-1] == pytest.approx(1.0, abs=0.011)
    for t in times:
        in_window = sum(1 for u in times if t <= u < t + 0.1)
        assert in_window <= 20 + 20 * 0.1, (t, in_window)
    gaps = [b - a for a, b in itertools.pairwise(times[20:])]
    assert all(g == pytest.approx(0.05, abs=0.011) for g in gaps), gaps


# -- acceptance: accuracy ------------------------------------------------------------------


@pytest.mark.parametrize("burst", [1, None])
async def test_achieved_rate_over_ten_seconds_is_within_one_percent(burst: int | None) -> None:
    """200 req/s, 64 callers, 10 s of fake time. The initial burst is counted: with the
    default burst (= rate) the first 200 go at t=0, so over 10 s the total is burst + 2000."""
    clock = FakeClock()
    rl = RateLimit(200, burst=burst, clock=clock)
    stamps: list[float] = []
    stop = 10.0

    @rh.resilient(rl)
    async def call() -> None:
        stamps.append(clock.now())

    async def caller() -> None:
        while clock.now() < stop:
            await call()

    tasks = [asyncio.create_task(caller()) for _ in range(64)]
    await clock.advance(stop + 0.0001)
    expected = (rl.burst or 0) + 200 * stop
    done_in_time = sum(1 for s in stamps if s <= stop)
    assert done_in_time == pytest.approx(expected, rel=0.01)
    after_burst = [s for s in stamps if 0 < s <= stop]
    assert len(after_burst) / stop == pytest.approx(200, rel=0.01)
    await cancel_all(tasks, clock, rl)  # no timer left behind once nobody waits


# -- fairness and priorities ---------------------------------------------------------------


async def test_waiters_are_served_first_in_first_out() -> None:
    clock, _, call, order = recording_limit(10, burst=1)
    tasks = await arrive_in_order(call(n) for n in range(30))
    await clock.advance(3.0)
    await asyncio.gather(*tasks)
    assert order == list(range(30))


async def test_urgent_waiters_overtake_background_ones_without_starving_them() -> None:
    clock, _, call, order = recording_limit(10, burst=1)
    await call("first")  # empties the bucket
    with priority("background"):
        tasks = await arrive_in_order(call(f"b{n}") for n in range(6))
    with priority("urgent"):
        tasks += await arrive_in_order(call(f"u{n}") for n in range(12))
    tasks += await arrive_in_order([call("n0")])  # normal, the default
    await clock.advance(2.0)
    await asyncio.gather(*tasks)
    served = order[1:]
    assert served[:4] == ["u0", "u1", "u2", "u3"]  # urgent overtakes the earlier background
    assert served[4] == "n0"  # passed over four times: its turn
    assert served[5] == "b0"  # background too, FIFO within its class
    urgent = [s for s in served if s.startswith("u")]
    background = [s for s in served if s.startswith("b")]
    assert urgent == [f"u{n}" for n in range(12)]
    assert background == [f"b{n}" for n in range(6)]


# -- bounded waits -------------------------------------------------------------------------


async def test_max_wait_raises_at_once_without_taking_a_token() -> None:
    clock = FakeClock()
    events: list[rh.Event] = []
    rl = RateLimit(1, max_wait=0.1, clock=clock, on_event=events.append)

    @rh.resilient(rl)
    async def call() -> str:
        return "done"

    assert await call() == "done"
    bucket = rl.bucket(None)
    assert bucket is not None
    before = bucket.tokens
    with pytest.raises(rh.RateLimitExceeded) as info:
        await call()
    assert isinstance(info.value, aiohttp.ClientError)
    assert info.value.wait == pytest.approx(1.0)
    assert bucket.tokens == before  # no token taken
    assert rl.waiting(None) == 0 and rl.in_flight(None) == 0
    assert clock.now() == 0.0  # no waiting happened
    assert [e.name for e in events] == ["ratelimit.acquired", "ratelimit.rejected"]
    assert events[-1].detail["bound"] == 0.1
    await clock.advance(0.95)
    task = asyncio.ensure_future(call())  # 0.05 s left: within max_wait, so it waits
    await clock.advance(0.05)
    assert await task == "done"


async def test_max_wait_zero_never_waits() -> None:
    clock = FakeClock()

    @rh.resilient(RateLimit(1, max_wait=0, clock=clock))
    async def call() -> None: ...

    await call()
    with pytest.raises(rh.RateLimitExceeded):
        await call()


async def test_an_outer_deadline_bounds_the_wait() -> None:
    clock = FakeClock()
    rl = RateLimit(1, clock=clock)

    @rh.resilient(rh.Timeout(0.5, clock=clock), rl)
    async def call() -> None: ...

    await call()
    with pytest.raises(rh.RateLimitExceeded, match="deadline"):
        await call()
    assert rl.waiting(None) == 0
    bucket = rl.bucket(None)
    assert bucket is not None and bucket.tokens == pytest.approx(0.0)


async def test_max_wait_also_ends_a_wait_that_grew_while_waiting() -> None:
    clock = FakeClock()
    events: list[rh.Event] = []
    rl = RateLimit(10, burst=1, max_wait=1.0, clock=clock, on_event=events.append)

    @rh.resilient(rl)
    async def call() -> None: ...

    await call()
    task = asyncio.ensure_future(call())
    await asyncio.sleep(0)
    bucket = rl.bucket(None)
    assert bucket is not None
    bucket.pause(5.0, clock.now())  # e.g. a Retry-After seen by another request
    await clock.advance(1.0)
    with pytest.raises(rh.RateLimitExceeded, match="max_wait"):
        await task
    assert rl.waiting(None) == 0
    assert clock.pending() == 0
    assert [e.name for e in events] == ["ratelimit.acquired", "ratelimit.rejected"]
    assert clock.now() == 1.0


# -- cancellation --------------------------------------------------------------------------


async def test_cancelling_a_waiter_takes_no_token_and_keeps_the_queue_consistent() -> None:
    clock, rl, call, order = recording_limit(10, burst=1)
    await call(-1)
    tasks = await arrive_in_order(call(n) for n in range(5))
    assert rl.waiting(None) == 5
    tasks[0].cancel()  # the head
    tasks[2].cancel()
    await asyncio.sleep(0)
    assert rl.waiting(None) == 3
    await clock.advance(0.1)
    assert order == [-1, 1]  # the first token goes to the next live waiter, in order
    await clock.advance(0.2)
    assert order == [-1, 1, 3, 4]
    assert rl.waiting(None) == 0 and rl.in_flight(None) == 0
    await asyncio.gather(*tasks, return_exceptions=True)
    assert clock.pending() == 0


async def test_cancelled_after_its_token_was_granted_gives_the_token_back() -> None:
    clock, rl, call, ran = recording_limit(10, burst=1)
    await call(0)
    task, other = await arrive_in_order(call(n) for n in (1, 2))
    bucket = rl.bucket(None)
    assert bucket is not None
    clock._now = 0.1  # the token for task 1 is due ...
    clock._run_due(0.1)  # ... and granted, but task 1 has not resumed yet
    task.cancel()  # and is cancelled before it sends anything
    await asyncio.gather(task, return_exceptions=True)
    assert rl.in_flight(None) == 0
    await asyncio.sleep(0)
    assert ran == [0, 2]  # the token went back, and on to the next waiter
    await other


async def test_ten_thousand_waiters_cost_one_wakeup_per_token() -> None:
    clock, rl, call, done = recording_limit(100, burst=1)
    await call(-1)
    tasks = [asyncio.create_task(call(n)) for n in range(10_000)]
    await asyncio.sleep(0)
    assert rl.waiting(None) == 10_000
    assert clock.pending() == 1  # one timer for the head of the queue, not one per waiter
    for k in range(1, 4):
        await clock.advance(0.01)
        assert len(done) == 1 + k  # exactly one waiter woken per token
        assert clock.pending() == 1
    await cancel_all(tasks, clock, rl)


# -- bulkhead ------------------------------------------------------------------------------


async def test_max_concurrency_bounds_requests_in_flight_and_frees_on_errors() -> None:
    clock = FakeClock()
    rl = RateLimit(1000, max_concurrency=2, clock=clock)
    gate = asyncio.Event()
    running = 0
    peak = 0

    @rh.resilient(rl)
    async def call(fail: bool) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
            if fail:
                raise aiohttp.ClientConnectionError("boom")
        finally:
            running -= 1

    tasks = [asyncio.create_task(call(n % 2 == 0)) for n in range(6)]
    await until(lambda: rl.in_flight(None) == 2 and rl.waiting(None) == 4)
    tasks[5].cancel()  # a waiter cancelled
    tasks[0].cancel()  # a request in flight cancelled: its slot is freed
    await until(lambda: rl.in_flight(None) == 2 and rl.waiting(None) == 2)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert peak == 2
    assert sum(isinstance(r, aiohttp.ClientConnectionError) for r in results) == 2
    assert rl.in_flight(None) == 0 and rl.waiting(None) == 0


# -- keys ----------------------------------------------------------------------------------


async def test_each_host_has_its_bucket_and_a_shared_layer_shares_them() -> None:
    clock = FakeClock()
    rl = RateLimit(1, max_wait=0, clock=clock)
    async with MockServer(clock=clock) as server:
        by_ip = server.url("/ok")
        by_name = by_ip.with_host("localhost")
        async with aiohttp.ClientSession(middlewares=(rl,)) as one:
            (await one.get(by_ip)).release()
            (await one.get(by_name)).release()  # another host: another bucket
            with pytest.raises(rh.RateLimitExceeded):
                await one.get(by_ip)
        async with aiohttp.ClientSession(middlewares=(rl,)) as two:
            with pytest.raises(rh.RateLimitExceeded):
                await two.get(by_ip)  # the same layer object: the same buckets
        assert server.count("/ok") == 2


async def test_a_key_callable_groups_requests_and_decorated_calls() -> None:
    clock = FakeClock()
    seen: list[Any] = []

    def by_tenant(*args: Any, **kwargs: Any) -> Any:
        seen.append(args)
        return kwargs.get("tenant")

    rl = RateLimit(1, max_wait=0, key=by_tenant, clock=clock)

    @rh.resilient(rl)
    async def call(n: int, *, tenant: str) -> int:
        return n

    assert await call(1, tenant="a") == 1
    assert await call(2, tenant="b") == 2
    with pytest.raises(rh.RateLimitExceeded):
        await call(3, tenant="a")
    assert seen[0] == (1,)

    rl2 = RateLimit(1, max_wait=0, key=lambda req: req.url.path, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl2,)) as s:
        (await s.get(server.url("/a"))).release()
        (await s.get(server.url("/b"))).release()
        with pytest.raises(rh.RateLimitExceeded):
            await s.get(server.url("/a"))
    assert rl2.bucket("/a") is not None


async def test_repeated_and_interleaved_urls_each_use_their_hosts_bucket() -> None:
    clock = FakeClock()
    rl = RateLimit(2, max_wait=0, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        a = server.url("/ok")
        b = a.with_host("localhost")
        for url in (a, a, b):  # the same URL object twice in a row, then another host
            (await s.get(url)).release()
        with pytest.raises(rh.RateLimitExceeded):
            await s.get(a)
        (await s.get(b)).release()
        with pytest.raises(rh.RateLimitExceeded):
            await s.get(b)
        for host in (a, b):
            key = (host.scheme, host.host, host.port)
            bucket = rl.bucket(key)
            assert bucket is not None and bucket.tokens == pytest.approx(0)
            assert rl.in_flight(key) == 0
        assert server.count("/ok") == 4


async def test_a_request_after_its_hosts_lane_was_forgotten_gets_a_new_one() -> None:
    # One layer used by a session and by a decorated call (one key for all calls): the
    # decorated call's new lane evicts the host's idle one, and the next request to the host,
    # the same URL as the one before, must not go on using the lane that was dropped.
    clock = FakeClock()
    rl = RateLimit(10, max_keys=1, clock=clock)

    @rh.resilient(rl)
    async def call() -> None: ...

    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        url = server.url("/ok")
        key = origin_key(server)
        (await s.get(url)).release()
        await clock.advance(1.0)  # the host's bucket is full again: idle
        await call()
        assert rl.bucket(key) is None
        (await s.get(url)).release()
        bucket = rl.bucket(key)
        assert bucket is not None and bucket.tokens == pytest.approx(9)


async def test_a_clock_derived_from_the_loop_clock_is_the_one_read() -> None:
    class Leaping(LoopClock):
        """A second passes between any two readings."""

        def __init__(self) -> None:
            self.t = 0.0

        def now(self) -> float:
            self.t += 1.0
            return self.t

    rl = RateLimit(1, burst=1, max_wait=0, clock=Leaping())

    @rh.resilient(rl)
    async def call() -> int:
        return 1

    assert [await call() for _ in range(3)] == [1, 1, 1]  # a token has always come back


async def test_idle_keys_are_forgotten_past_max_keys() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=3)
    rl = RateLimit(10, key=lambda n: n, max_keys=3, store=store, clock=clock)

    @rh.resilient(rl)
    async def call(n: int) -> None: ...

    for n in range(3):
        await call(n)
    await clock.advance(1.0)  # buckets full again: idle
    await call(99)
    assert len(store) == 3
    assert rl.bucket(0) is None and rl.bucket(99) is not None


# -- adaptation ----------------------------------------------------------------------------


async def test_a_429_with_retry_after_pauses_every_request_of_the_host() -> None:
    clock = FakeClock()
    events: list[rh.Event] = []
    rl = RateLimit(100, clock=clock, on_event=events.append)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.script("/busy", Reply(429, headers={"Retry-After": "2"}), Reply(200))
        async with s.get(server.url("/busy")) as resp:
            assert resp.status == 429
        other = asyncio.create_task(s.get(server.url("/ok")))  # another path, same host
        await clock.advance(1.9)
        assert not other.done() and server.count("/ok") == 0
        await clock.advance(0.1)
        await until(other.done)
        (await other).release()
    adapted = [e for e in events if e.name == "ratelimit.adapted"]
    assert adapted and adapted[0].detail["pause"] == 2.0
    assert "retry-after" in adapted[0].detail["reason"]
    assert adapted[0].detail["old_rate"] == 100 and adapted[0].detail["new_rate"] == 50
    waited = [e for e in events if e.name == "ratelimit.waited"]
    assert waited and waited[0].detail["seconds"] == pytest.approx(2.0)


async def test_a_503_without_retry_after_changes_nothing() -> None:
    clock = FakeClock()
    rl = RateLimit(10, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.script("/down", Reply(503))
        (await s.get(server.url("/down"))).release()
        bucket = rl.bucket(origin_key(server))
        assert bucket is not None and bucket.rate == 10 and bucket.tokens == pytest.approx(9)


async def test_github_style_exhausted_quota_pauses_until_the_epoch_reset() -> None:
    clock = FakeClock()
    rl = RateLimit(100, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        reset = int(time.time()) + 6
        server.script(
            "/gh",
            Reply(
                200,
                headers={
                    "X-RateLimit-Limit": "5000",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                },
            ),
            Reply(200),
        )
        (await s.get(server.url("/gh"))).release()
        pause = reset - time.time()
        nxt = asyncio.create_task(s.get(server.url("/gh")))
        await clock.advance(pause - 0.2)
        assert not nxt.done()
        await clock.advance(0.4)
        await until(nxt.done)
        (await nxt).release()


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("RateLimit", '"default";r=3;t=30'),
        ("RateLimit-Remaining", "3"),
        ("x-ratelimit-remaining", "3"),
        ("X-Rate-Limit-Remaining", "3"),
        ("RateLimit-Policy", '"default";q=3;w=1'),
    ],
)
async def test_any_one_rate_limit_header_on_a_success_is_read(header: str, value: str) -> None:
    clock = FakeClock()
    rl = RateLimit(100, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.script("/limited", Reply(200, headers={header: value}))
        (await s.get(server.url("/limited"))).release()
        bucket = rl.bucket(origin_key(server))
        assert bucket is not None and bucket.tokens <= 3


async def test_a_success_without_a_remaining_count_or_policy_changes_nothing() -> None:
    clock = FakeClock()
    rl = RateLimit(100, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        headers = {"X-RateLimit-Limit": "3", "X-RateLimit-Reset": "30", "Retry-After": "9"}
        server.script("/limited", Reply(200, headers=headers))
        (await s.get(server.url("/limited"))).release()
        bucket = rl.bucket(origin_key(server))
        assert bucket is not None and bucket.rate == 100 and bucket.tokens == pytest.approx(99)


async def test_malformed_headers_are_ignored() -> None:
    clock = FakeClock()
    rl = RateLimit(10, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.script(
            "/junk",
            Reply(
                429,
                headers={
                    "Retry-After": "soon",
                    "RateLimit": '"x";r=abc;t=-',
                    "RateLimit-Policy": "q=;w=0",
                    "X-RateLimit-Remaining": "many",
                    "X-RateLimit-Reset": "later",
                },
            ),
        )
        async with s.get(server.url("/junk")) as resp:
            assert resp.status == 429
        bucket = rl.bucket(origin_key(server))
        assert bucket is not None
        assert bucket.rate == 5  # a bare 429: halved, nothing else
        assert bucket.tokens == 0


async def test_decorated_calls_adapt_from_client_response_errors() -> None:
    clock = FakeClock()
    rl = RateLimit(10, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession() as s:
        server.script("/busy", Reply(429, headers={"Retry-After": "3"}))

        @rh.resilient(rl)
        async def fetch() -> None:
            async with s.get(server.url("/busy")) as resp:
                resp.raise_for_status()

        with pytest.raises(aiohttp.ClientResponseError):
            await fetch()
        bucket = rl.bucket(None)
        assert bucket is not None
        assert bucket.wait_for(1, clock.now()) == pytest.approx(3.0)


async def test_adapts_to_a_slower_server_then_recovers_when_the_limit_lifts() -> None:
    """MockServer enforces 10 req/s (429 + Retry-After + RateLimit headers); the client is
    configured for 100 req/s. 200 requests: <= 5% 429 with adaptation (most of them without,
    see the next test); when the server lifts its limit the client climbs back to 100 req/s."""
    clock = FakeClock()
    rl = RateLimit(100, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.rate_limited("/api", 10, per=1)
        key = origin_key(server)
        tasks, statuses = start_callers(s, server.url("/api"), requests=200, callers=8)
        await drive(clock, tasks, queued_with_none_in_flight(rl, key, tasks), step=0.02, limit=40)
        assert len(statuses) == 200
        share_429 = statuses.count(429) / len(statuses)
        assert share_429 <= 0.05, share_429
        limited_for = clock.now()
        assert 18 <= limited_for <= 22  # about 200 requests at 10 req/s (10 in the burst)
        bucket = rl.bucket(key)
        assert bucket is not None and bucket.rate == pytest.approx(10)

        # The limit lifts: the rate climbs back additively (+10 req/s per second).
        server.set_rate("/api", None)
        stamps: list[float] = []
        end = clock.now() + 12.0

        async def fast_caller() -> None:
            while clock.now() < end:
                async with s.get(server.url("/api")) as resp:
                    assert resp.status == 200
                    stamps.append(clock.now())

        tasks = [asyncio.create_task(fast_caller()) for _ in range(8)]
        await drive(clock, tasks, queued_with_none_in_flight(rl, key, tasks), step=0.02, limit=20)
        assert bucket.rate == 100
        last_second = [t for t in stamps if end - 1.0 <= t < end]
        assert len(last_second) >= 95, len(last_second)
        first_second = [t for t in stamps if end - 12.0 <= t < end - 11.0]
        assert len(first_second) <= 25  # gradual, not a jump back to 100


async def test_without_adaptation_most_responses_are_429() -> None:
    clock = FakeClock()
    rl = RateLimit(100, adaptive=False, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.rate_limited("/api", 10, per=1)
        key = origin_key(server)
        tasks, statuses = start_callers(s, server.url("/api"), requests=200, callers=8)
        await drive(clock, tasks, queued_with_none_in_flight(rl, key, tasks), step=0.02)
    assert statuses.count(429) / len(statuses) > 0.5


async def test_a_declared_policy_lowers_rate_and_burst_for_the_whole_host() -> None:
    clock = FakeClock()
    events: list[rh.Event] = []
    rl = RateLimit(100, clock=clock, on_event=events.append)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.rate_limited("/api", 20, per=1)
        (await s.get(server.url("/api"))).release()
        bucket = rl.bucket(origin_key(server))
        assert bucket is not None
        assert bucket.rate == 20 and bucket.capacity == 20
        assert bucket.tokens <= 19
    adapted = [e for e in events if e.name == "ratelimit.adapted"]
    assert len(adapted) == 1
    assert adapted[0].detail == {
        "old_rate": 100.0,
        "new_rate": 20.0,
        "reason": "policy",
        "pause": None,
        "status": 200,
    }
    assert adapted[0].layer == "RateLimit" and adapted[0].method == "GET"


# -- composition ---------------------------------------------------------------------------


def test_standard_places_the_rate_limit_inside_the_total_deadline() -> None:
    (stack,) = rh.standard(rate=5)
    names = [type(layer).__name__ for layer in stack.layers]
    assert "RateLimit" in names
    i = names.index("RateLimit")
    assert names[i + 1 :] == ["Timeout"]  # only the attempt timeout is inside it
    rl = stack.layers[i]
    assert isinstance(rl, RateLimit) and rl.rate == 5
    custom = RateLimit(3, per=60)
    (stack,) = rh.standard(rate=custom)
    assert custom in stack.layers
    (stack,) = rh.standard()
    assert "RateLimit" not in [type(layer).__name__ for layer in stack.layers]
    with pytest.raises(TypeError, match="rate"):
        rh.standard(rate="5/s")  # type: ignore[arg-type]


async def test_standard_stack_rejects_a_wait_past_its_total_deadline() -> None:
    clock = FakeClock()
    (stack,) = rh.standard(
        rate=RateLimit(1, per=60, clock=clock), total_timeout=5, attempt_timeout=2, clock=clock
    )
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(stack,)) as s:
        (await s.get(server.url("/ok"))).release()
        with pytest.raises(rh.RateLimitExceeded, match="deadline"):
            await s.get(server.url("/ok"))
        assert server.count("/ok") == 1


async def test_remaining_quota_counts_the_requests_still_in_flight() -> None:
    """A response saying 2 requests remain, while 3 others are still in flight, leaves no
    token: those 3 will use the quota first."""
    clock = FakeClock()
    rl = RateLimit(100, clock=clock)
    gate = asyncio.Event()
    async with MockServer(clock=clock) as server, aiohttp.ClientSession() as s:
        server.script("/q", Reply(200, headers={"RateLimit": '"default";r=2;t=10'}))

        @rh.resilient(rl)
        async def fetch(wait: bool) -> aiohttp.ClientResponse:
            if wait:
                await gate.wait()
            resp = await s.get(server.url("/q"))
            resp.release()
            return resp

        held = [asyncio.create_task(fetch(True)) for _ in range(3)]
        await asyncio.sleep(0)
        assert rl.in_flight(None) == 3
        await fetch(False)
        bucket = rl.bucket(None)
        assert bucket is not None
        assert bucket.tokens == 0.0
        assert bucket.rate == pytest.approx(2 / 10)  # no policy: remaining / reset
        gate.set()
        await asyncio.gather(*held)


async def test_a_deadline_reached_while_waiting_is_a_timeout_and_leaves_the_queue_clean() -> None:
    clock = FakeClock()
    rl = RateLimit(10, burst=1, clock=clock)

    @rh.resilient(rh.Timeout(1.0, clock=clock), rl)
    async def call() -> None: ...

    await call()
    task = asyncio.ensure_future(call())  # 0.1 s to wait: within the deadline
    await asyncio.sleep(0)
    assert rl.waiting(None) == 1
    bucket = rl.bucket(None)
    assert bucket is not None
    bucket.pause(5.0, clock.now())  # then the server asks for a pause
    await clock.advance(1.0)
    with pytest.raises(rh.DeadlineExceeded):
        await task
    assert rl.waiting(None) == 0 and rl.in_flight(None) == 0
    assert clock.pending() == 0


async def test_a_hostile_policy_cannot_freeze_the_client() -> None:
    clock = FakeClock()
    rl = RateLimit(10, max_pause=30, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.script(
            "/slow",
            Reply(200, headers={"RateLimit-Policy": "1;w=86400", "Retry-After": "99999"}),
            Reply(429, headers={"Retry-After": "99999", "RateLimit": '"d";r=0;t=99999'}),
        )
        (await s.get(server.url("/slow"))).release()
        (await s.get(server.url("/slow"))).release()
        bucket = rl.bucket(origin_key(server))
        assert bucket is not None
        assert bucket.rate == pytest.approx(1 / 30)
        assert bucket.wait_for(1, clock.now()) <= 30.0


async def test_the_bulkhead_holds_a_slot_until_the_response_is_done() -> None:
    clock = FakeClock()
    rl = RateLimit(1000, max_concurrency=2, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession(middlewares=(rl,)) as s:
        server.script("/slow", Reply(200, delay=1.0))
        key = origin_key(server)

        async def one() -> int:
            async with s.get(server.url("/slow")) as resp:
                return resp.status

        tasks = [asyncio.create_task(one()) for _ in range(5)]
        await server.wait_for_requests(2, path="/slow")
        assert rl.in_flight(key) == 2 and rl.waiting(key) == 3
        assert server.count("/slow") == 2
        await clock.advance(1.0)
        await server.wait_for_requests(4, path="/slow")
        assert server.count("/slow") == 4
        await clock.advance(1.0)
        await server.wait_for_requests(5, path="/slow")
        await clock.advance(1.0)
        assert await asyncio.gather(*tasks) == [200] * 5
        assert rl.in_flight(key) == 0 and rl.waiting(key) == 0


def test_a_layer_outlives_an_event_loop_that_dropped_its_waiters() -> None:
    """Reused across asyncio.run() calls, after a loop closed with a waiter never cancelled:
    the next loop does not inherit the dead waiter (nor hang behind it)."""
    clock = FakeClock()
    rl = RateLimit(10, burst=1, clock=clock)

    @rh.resilient(rl)
    async def call() -> str:
        return "ok"

    old = asyncio.new_event_loop()
    try:
        old.run_until_complete(call())
        stale = old.create_task(call())
        old.run_until_complete(asyncio.sleep(0))
        assert rl.waiting(None) == 1
    finally:
        stale._log_destroy_pending = False  # type: ignore[attr-defined]
        old.close()  # the waiter is dropped, never cancelled

    async def later() -> str:
        task = asyncio.ensure_future(call())
        await clock.advance(0.2)
        return await task

    assert asyncio.run(later()) == "ok"
    assert rl.waiting(None) == 0


async def test_inside_retry_each_attempt_costs_a_token() -> None:
    clock = FakeClock()
    rl = RateLimit(1, clock=clock)
    retry = rh.Retry(attempts=3, backoff=rh.Backoff(0.01, cap=0.01), budget=None, clock=clock)
    async with (
        MockServer(clock=clock) as server,
        aiohttp.ClientSession(middlewares=(rh.Stack(retry, rl),)) as s,
    ):
        server.fail_then_succeed("/flaky", failures=2, status=503)
        key = origin_key(server)
        task = asyncio.create_task(s.get(server.url("/flaky")))
        await server.wait_for_requests(1, path="/flaky")
        await drive(
            clock,
            [task],
            settled=lambda: rl.in_flight(key) == 0,
            step=0.05,
            limit=10,
        )
        resp = task.result()
        assert resp.status == 200
        resp.release()
    times = [r.time for r in server.requests_for("/flaky")]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0 - 1e-9  # the retry waited for its own token
    assert times[2] - times[1] >= 1.0 - 1e-9


async def test_retry_and_rate_limit_against_a_limited_server() -> None:
    """The issue's end-to-end scenario on a FakeClock (the real-time version is
    benchmarks/ratelimit_retry_e2e.py): a server admitting 50 req/s (burst 50, 429 with
    Retry-After: 1), 600 calls from 32 callers through Retry + RateLimit."""
    clock = FakeClock()
    rl = RateLimit(50, clock=clock)
    retry = rh.Retry(attempts=4, clock=clock)
    async with (
        MockServer(clock=clock) as server,
        aiohttp.ClientSession(middlewares=(rh.Stack(retry, rl),)) as s,
    ):
        server.rate_limited("/api", 50, per=1, burst=50)
        key = origin_key(server)
        tasks, outcomes = start_callers(s, server.url("/api"), requests=600, callers=32)
        await drive(
            clock,
            tasks,
            settled=lambda: rl.in_flight(key) == 0,  # callers also sleep in Retry
            step=0.02,
            limit=30,
        )
        elapsed = clock.now()
        statuses = [r for r in server.requests_for("/api")]
    assert outcomes.count(200) / 600 >= 0.995
    share_429 = (len(statuses) - outcomes.count(200)) / len(statuses)
    assert share_429 <= 0.02
    assert outcomes.count(200) / (50 + 50 * elapsed) >= 0.95


async def test_no_reference_cycles_on_the_fast_path_or_after_a_wait() -> None:
    clock = FakeClock()
    rl = RateLimit(100, burst=50, clock=clock)

    @rh.resilient(rl)
    async def call() -> int:
        return 1

    for _ in range(5):
        await call()
    gc.collect()
    gc.disable()
    try:
        for _ in range(40):
            await call()
        assert gc.collect() == 0
        tasks = [asyncio.create_task(call()) for _ in range(50)]
        await clock.advance(1.0)
        await asyncio.gather(*tasks)
        del tasks
        assert gc.collect() == 0
    finally:
        gc.enable()
