"""Timeout: a deadline for the whole exchange, body included, driven by a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from _layers import Again
from _polling import until

import resilient_http as rh
from resilient_http._middleware import Call, Step
from resilient_http.testing import FakeClock, MockServer, Reply


async def test_a_slow_response_is_cut_at_the_deadline() -> None:
    clock = FakeClock()
    started = time.perf_counter()
    async with MockServer(clock=clock) as server:
        server.script("/slow", Reply(200, delay=5))
        async with aiohttp.ClientSession(middlewares=(rh.Timeout(1.0, clock=clock),)) as s:
            task = asyncio.create_task(s.get(server.url("/slow")))
            await until(lambda: server.count("/slow") == 1)
            await clock.advance(0.9)
            assert not task.done()
            await clock.advance(0.1)
            with pytest.raises(rh.DeadlineExceeded) as info:
                await task
    assert info.value.timeout == 1.0
    assert isinstance(info.value, asyncio.TimeoutError)
    assert isinstance(info.value, aiohttp.ClientError)
    assert time.perf_counter() - started < 1.0  # fake time: no real second was slept


async def test_a_body_dripping_past_the_deadline_times_out() -> None:
    clock = FakeClock()
    async with MockServer(clock=clock) as server:
        server.script("/drip", Reply(200, body=b"x" * 100, drip=(10, 0.25)))
        async with aiohttp.ClientSession(middlewares=(rh.Timeout(1.0, clock=clock),)) as s:
            task = asyncio.create_task(s.get(server.url("/drip")))
            await until(lambda: server.count("/drip") == 1)
            for _ in range(3):  # steps exact in binary: 0.75 s, body still dripping
                await clock.advance(0.25)
                await asyncio.sleep(0.002)  # let the dripped chunks cross the socket
            assert not task.done()
            await clock.advance(0.25)
            with pytest.raises(rh.DeadlineExceeded):
                await task


async def test_stream_mode_bounds_the_headers_only() -> None:
    clock = FakeClock()
    async with MockServer(clock=clock) as server:
        server.script("/drip", Reply(200, body=b"x" * 30, drip=(10, 0.6)))
        timeout = rh.Timeout(1.0, stream=True, clock=clock)
        assert not timeout.reads_body
        async with (
            aiohttp.ClientSession(middlewares=(timeout,)) as s,
            s.get(server.url("/drip")) as resp,
        ):
            reading = asyncio.create_task(resp.read())
            for _ in range(20):  # 2 fake seconds: past the 1 s limit
                await clock.advance(0.1)
                await asyncio.sleep(0.002)
            assert await reading == b"x" * 30


async def test_the_same_timeout_object_works_through_wrap_and_the_decorator() -> None:
    clock = FakeClock()
    timeout = rh.Timeout(1.0, clock=clock)
    async with MockServer(clock=clock) as server, aiohttp.ClientSession() as session:
        server.script("/slow", Reply(200, delay=5))
        api = rh.wrap(session, timeout)
        task = asyncio.create_task(api.get(server.url("/slow")))
        await until(lambda: server.count("/slow") == 1)
        await clock.advance(1.0)
        with pytest.raises(rh.DeadlineExceeded):
            await task

        @rh.resilient(timeout)
        async def fetch() -> bytes:
            async with session.get(server.url("/slow")) as resp:
                return await resp.read()

        task2 = asyncio.create_task(fetch())
        await until(lambda: server.count("/slow") == 2)
        await clock.advance(0.5)
        assert not task2.done()
        await clock.advance(0.5)
        with pytest.raises(rh.DeadlineExceeded):
            await task2


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(("outer", "inner"), [(5, 1), (1, 5)])
async def test_nested_timeouts_fire_at_the_earliest_fused_or_not(
    fused: bool, outer: float, inner: float
) -> None:
    clock = FakeClock()
    layers = (rh.Timeout(outer, clock=clock), rh.Timeout(inner, clock=clock))
    middlewares = (rh.Stack(*layers),) if fused else layers
    async with MockServer(clock=clock) as server:
        server.script("/slow", Reply(200, delay=10))
        async with aiohttp.ClientSession(middlewares=middlewares) as s:
            task = asyncio.create_task(s.get(server.url("/slow")))
            await until(lambda: server.count("/slow") == 1)
            await clock.advance(0.99)
            assert not task.done()
            await clock.advance(0.01)
            with pytest.raises(rh.DeadlineExceeded) as info:
                await task
    assert info.value.timeout == 1


class Probe(rh.Layer):
    """Records the deadline inner layers see."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def enter(self, call: Call, i: int) -> Step:
        self.seen.append(rh.current_deadline())
        return None


async def test_the_deadline_is_visible_to_inner_layers() -> None:
    clock = FakeClock(start=100.0)
    probe = Probe()
    async with MockServer(clock=clock) as server:
        stack = rh.Stack(rh.Timeout(5, clock=clock), rh.Timeout(2, clock=clock), probe)
        async with (
            aiohttp.ClientSession(middlewares=(stack,)) as s,
            s.get(server.url("/ok")) as resp,
        ):
            assert resp.status == 200
            assert rh.current_deadline() is None  # reset on the way out
    assert probe.seen == [102.0]


async def test_a_caller_cancellation_is_not_turned_into_a_timeout() -> None:
    clock = FakeClock()
    async with MockServer(clock=clock) as server:
        server.script("/slow", Reply(200, delay=5))
        async with aiohttp.ClientSession(middlewares=(rh.Timeout(1.0, clock=clock),)) as s:
            task = asyncio.create_task(s.get(server.url("/slow")))
            await until(lambda: server.count("/slow") == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_each_attempt_gets_its_own_timeout_inside_a_loop() -> None:
    """Stack(total, <a layer that re-enters>, attempt): attempts time out one by one."""
    clock = FakeClock()
    async with MockServer(clock=clock) as server:
        server.script("/x", Reply(200, delay=5), Reply(200, delay=5), Reply(200, body="third"))
        stack = rh.Stack(rh.Timeout(10, clock=clock), Again(3), rh.Timeout(1, clock=clock))
        async with aiohttp.ClientSession(middlewares=(stack,)) as s:
            task = asyncio.create_task(s.get(server.url("/x")))
            for n in (1, 2):
                await until(lambda n=n: server.count("/x") == n)  # type: ignore[misc]
                await clock.advance(1.0)
            resp = await task
            assert await resp.text() == "third"
            resp.release()
    assert server.count("/x") == 3


async def test_finished_calls_leave_no_timer_behind() -> None:
    clock = FakeClock()
    timeout = rh.Timeout(30, clock=clock)
    async with MockServer(clock=clock) as server:
        async with aiohttp.ClientSession(middlewares=(timeout,)) as s:
            for _ in range(50):
                async with s.get(server.url("/ok")) as resp:
                    await resp.read()
        assert clock.pending() <= 1  # at most the one timer of the layer
        assert not timeout._live


def test_a_layer_object_survives_a_new_event_loop() -> None:
    clock = FakeClock()
    timeout = rh.Timeout(1.0, clock=clock)

    async def once() -> None:
        async with MockServer(clock=clock) as server:
            server.script("/slow", Reply(200, delay=5))
            async with aiohttp.ClientSession(middlewares=(timeout,)) as s:
                task = asyncio.create_task(s.get(server.url("/slow")))
                await until(lambda: server.count("/slow") == 1)
                await clock.advance(1.0)
                with pytest.raises(rh.DeadlineExceeded):
                    await task

    asyncio.run(once())
    asyncio.run(once())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, ValueError),
        (0, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (timedelta(seconds=-1), ValueError),
        ("1", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_bad_durations_are_rejected_naming_the_parameter(value: Any, error: type) -> None:
    with pytest.raises(error, match="seconds"):
        rh.Timeout(value)


def test_other_arguments_are_validated() -> None:
    with pytest.raises(TypeError, match="stream"):
        rh.Timeout(1, stream="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        rh.Timeout(1, clock=object())  # type: ignore[arg-type]
    assert rh.Timeout(timedelta(milliseconds=1500)).seconds == 1.5


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
@pytest.mark.parametrize("caller_first", [True, False])
async def test_a_caller_cancellation_at_the_deadline_stays_a_cancellation(
    caller_first: bool,
) -> None:
    """The caller's cancel and the deadline land in the same loop iteration, in either order:
    the caller's cancellation goes through (as with ``asyncio.timeout``)."""
    clock = FakeClock()

    @rh.resilient(rh.Timeout(1.0, clock=clock))
    async def hang() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    if caller_first:  # timers due at the same time fire in the order they were armed
        clock.call_at(1.0, task.cancel)
    await asyncio.sleep(0)  # the layer arms its timer
    if not caller_first:
        clock.call_at(1.0, task.cancel)
    await clock.advance(1.0)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_cancellation_swallowed_before_the_call_does_not_hide_the_timeout() -> None:
    """A task that once swallowed a cancellation still gets ``DeadlineExceeded``."""
    clock = FakeClock()

    @rh.resilient(rh.Timeout(1.0, clock=clock))
    async def hang() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: cancelling() stays 1
            await asyncio.Event().wait()
        await hang()

    task = asyncio.create_task(main())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await clock.advance(1.0)
    with pytest.raises(rh.DeadlineExceeded):
        await task


async def test_calls_that_finish_out_of_order_are_dropped_and_the_rest_still_expire() -> None:
    """One FIFO and one timer per layer: finished calls behind a live one are skipped, due ones
    expire on time, and nothing is left behind."""
    clock = FakeClock()
    timeout = rh.Timeout(1.0, clock=clock)
    gates = {name: asyncio.Event() for name in "abcd"}

    @rh.resilient(timeout)
    async def wait(name: str) -> str:
        await gates[name].wait()
        return name

    tasks = {}
    for name in "abcd":  # entered at 0, 0.25, 0.5, 0.75
        if name != "a":
            await clock.advance(0.25)
        tasks[name] = asyncio.create_task(wait(name))
        await asyncio.sleep(0)
    for name in "bad":  # b behind a live call; a then b leave the FIFO; d behind c
        gates[name].set()
        assert await tasks[name] == name
    assert len(timeout._live) == 2  # c and the finished d
    await clock.advance(0.74)  # t = 1.49: the timer fired at 1.0 and re-armed for c
    assert not tasks["c"].done()
    await clock.advance(0.01)
    with pytest.raises(rh.DeadlineExceeded):
        await tasks["c"]
    assert not timeout._live
    assert clock.pending() == 0  # d, finished, armed no timer for 1.75


class Between(rh.Layer):
    """Records the deadline on the way in and on the way out, between two Timeouts."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def enter(self, call: Call, i: int) -> Step:
        self.seen.append(rh.current_deadline())
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        self.seen.append(rh.current_deadline())
        return None


@pytest.mark.parametrize("fused", [True, False])
async def test_each_layer_sees_the_deadline_of_the_timeouts_around_it(fused: bool) -> None:
    clock = FakeClock(start=100.0)
    between, probe = Between(), Probe()
    layers = (rh.Timeout(5, clock=clock), between, rh.Timeout(2, clock=clock), probe)
    middlewares = (rh.Stack(*layers),) if fused else layers
    async with (
        MockServer(clock=clock) as server,
        aiohttp.ClientSession(middlewares=middlewares) as s,
        s.get(server.url("/ok")) as resp,
    ):
        assert resp.status == 200
    assert between.seen == [105.0, 105.0]  # the outer deadline, before and after the inner
    assert probe.seen == [102.0]
    assert rh.current_deadline() is None


async def test_tasks_started_inside_a_call_keep_its_deadline() -> None:
    """contextvars are copied into child tasks: a child sees the deadline of the call that
    started it, also after that call has returned."""
    clock = FakeClock(start=10.0)
    release = asyncio.Event()
    seen: list[float | None] = []

    async def child() -> None:
        seen.append(rh.current_deadline())
        await release.wait()
        seen.append(rh.current_deadline())

    @rh.resilient(rh.Timeout(5, clock=clock), rh.Timeout(3, clock=clock))
    async def spawn() -> asyncio.Task[None]:
        return asyncio.create_task(child())

    task = await spawn()
    await asyncio.sleep(0)
    assert rh.current_deadline() is None
    release.set()
    await task
    assert seen == [13.0, 13.0]


async def test_the_success_path_creates_no_reference_cycles() -> None:
    clock = FakeClock()

    @rh.resilient(rh.Timeout(30, clock=clock), rh.Timeout(10, clock=clock))
    async def call() -> int:
        return 1

    for _ in range(5):
        await call()
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            await call()
        assert gc.collect() == 0
    finally:
        gc.enable()


async def test_a_task_that_ends_with_the_calls_error_leaves_no_more_garbage_than_bare() -> None:
    """The call keeps the task (call[TASK]); a task ending with the call's error must not
    form a task -> error -> traceback -> frame -> call -> task cycle. Counted: the tasks
    left as garbage, compared with a session without the layers. (On 3.10 under pytest the
    event loop's own frames already put most failed tasks in a cycle, bare or not, so this
    guards mainly on 3.11+; it used to count all garbage, which on 3.10 counted our frames
    caught in that cycle of the loop's.)"""

    async def garbage_tasks(middlewares: tuple[Any, ...]) -> int:
        async with (
            MockServer() as server,
            aiohttp.ClientSession(middlewares=middlewares) as session,
        ):
            server.script("/reset", *(Reply(reset=True) for _ in range(10)))

            async def one() -> None:
                await session.get(server.url("/reset"))

            gc.collect()
            gc.disable()
            try:
                for _ in range(10):
                    # Not pytest.raises: its ExceptionInfo makes the traceback a cycle itself.
                    try:
                        await asyncio.create_task(one())
                    except aiohttp.ClientError:
                        pass
                    else:
                        raise AssertionError("the call did not fail")
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                return sum(isinstance(o, asyncio.Task) for o in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()

    bare = await garbage_tasks(())
    assert await garbage_tasks((rh.Stack(rh.Timeout(30), rh.Timeout(20)),)) <= bare


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
async def test_a_task_of_another_class_is_timed_too() -> None:
    """A task that is not asyncio's C ``Task`` (here the pure-Python one a task factory may
    make) gets its cancel count read the usual way: the call still times out."""
    clock = FakeClock()

    @rh.resilient(rh.Timeout(1.0, clock=clock))
    async def hang() -> None:
        await asyncio.Event().wait()

    py_task: type[asyncio.Task[None]] = asyncio.tasks._PyTask  # type: ignore[attr-defined]
    task = py_task(hang(), loop=asyncio.get_running_loop())
    await asyncio.sleep(0)
    await clock.advance(1.0)
    with pytest.raises(rh.DeadlineExceeded):
        await task
