"""FakeClock: time moves only when the test says so."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from resilient_http._clock import LOOP_CLOCK, Clock
from resilient_http.testing import FakeClock


def test_fake_clock_is_a_clock() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(LOOP_CLOCK, Clock)


@pytest.mark.parametrize("start", ["0", None, True, float("nan"), float("inf")])
def test_start_is_validated(start: object) -> None:
    with pytest.raises(TypeError, match="start"):
        FakeClock(start)  # type: ignore[arg-type]


async def test_advance_rejects_negative_time() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="seconds"):
        await clock.advance(-1)


async def test_timers_fire_in_time_order_then_insertion_order() -> None:
    clock = FakeClock(start=10.0)
    fired: list[tuple[str, float]] = []

    def note(name: str) -> None:
        fired.append((name, clock.now()))

    clock.call_at(13.0, note, "c")
    clock.call_at(11.0, note, "a")
    clock.call_at(12.0, note, "b1")
    clock.call_at(12.0, note, "b2")
    clock.call_at(20.0, note, "late")
    await clock.advance(2.5)
    assert fired == [("a", 11.0), ("b1", 12.0), ("b2", 12.0)]
    assert clock.now() == 12.5
    await clock.advance(0.5)
    assert fired[-1] == ("c", 13.0)
    assert clock.pending() == 1


async def test_timer_in_the_past_fires_on_next_advance() -> None:
    clock = FakeClock(start=5.0)
    fired: list[float] = []
    clock.call_at(1.0, lambda: fired.append(clock.now()))
    assert fired == []
    await clock.advance(0)
    assert fired == [5.0]


async def test_sleep_wakes_only_once_time_has_moved_enough() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(2.0)
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await clock.advance(1.999)
    assert woke == [] and not task.done()
    await clock.advance(0.001)
    assert woke == [2.0]
    await task
    assert clock.sleeps == [2.0]


async def test_a_task_that_sleeps_again_is_woken_within_the_same_advance() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(1.0)
            ticks.append(clock.now())

    task = asyncio.create_task(ticker())
    await clock.advance(3.0)
    assert ticks == [1.0, 2.0, 3.0]
    await task


@pytest.mark.parametrize("seconds", [0, 0.0, -1.0])
async def test_sleep_of_zero_or_less_only_yields(seconds: float) -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(seconds), timeout=1.0)
    assert clock.now() == 0.0
    assert clock.pending() == 0


async def test_autojump_moves_time_to_the_end_of_the_sleep() -> None:
    clock = FakeClock(autojump=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await clock.sleep(30.0)
    assert clock.now() == 30.0
    await asyncio.gather(clock.sleep(5.0), clock.sleep(2.0))
    assert clock.now() == 35.0  # concurrent sleepers: the longest, not the sum
    assert loop.time() - started < 0.5


async def test_cancelling_a_sleeping_task_leaves_no_timer() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(10.0))
    await asyncio.sleep(0)
    assert clock.pending() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending() == 0
    await clock.advance(20.0)  # nothing fires, nothing breaks
    assert clock.pending() == 0


async def test_cancelled_timers_release_their_callbacks() -> None:
    clock = FakeClock()

    class Callback:
        def __call__(self) -> None:
            raise AssertionError("a cancelled timer fired")

    callbacks = [Callback() for _ in range(100)]
    refs = [weakref.ref(cb) for cb in callbacks]
    handles = [clock.call_at(1.0 + i, cb) for i, cb in enumerate(callbacks)]
    for handle in handles:
        handle.cancel()
        handle.cancel()  # twice is harmless
    del callbacks, handles
    gc.collect()
    assert all(ref() is None for ref in refs)
    assert clock.pending() == 0
    await clock.advance(1000.0)


async def test_cancel_after_firing_does_not_corrupt_pending() -> None:
    clock = FakeClock()
    fired: list[int] = []
    handle = clock.call_at(1.0, fired.append, 1)
    clock.call_at(5.0, fired.append, 5)
    await clock.advance(1.0)
    handle.cancel()
    assert fired == [1]
    assert clock.pending() == 1
    await clock.advance(4.0)
    assert fired == [1, 5]
    assert clock.pending() == 0
