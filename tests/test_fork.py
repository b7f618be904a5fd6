"""The engine's FORK step: a layer that runs the layers inside it itself (what Hedge does)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from _layers import Recorder, Scripted

import resilient_http as rh
from resilient_http._middleware import FORK, Call, Inner, Short, Step
from resilient_http.testing import MockServer

pytestmark = pytest.mark.filterwarnings("error")


class Twice(rh.Layer):
    """Runs the inner layers twice at once and answers with both outcomes (decorator mode),
    or with the second response (request mode, the first released)."""

    __slots__ = ("log", "seen", "go_on")

    def __init__(self, log: list[str], go_on: bool = False) -> None:
        self.log = log
        self.seen: list[Inner] = []
        self.go_on = go_on

    def enter(self, call: Call, i: int) -> Step:
        self.log.append("enter twice")
        return FORK  # type: ignore[no-any-return]

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        self.log.append("exit twice")
        return None

    async def fork(self, inner: Inner) -> Short | None:
        self.seen.append(inner)
        if self.go_on:
            return None
        first, second = await asyncio.gather(inner(), inner())
        if isinstance(first, aiohttp.ClientResponse):
            first.release()
            return Short(second)
        return Short((first, second))


class Slot(rh.Layer):
    """Counts in its own slot: a fresh slot per attempt reads 1 on the way out."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: list[int] = []

    def enter(self, call: Call, i: int) -> Step:
        call[i] = (call[i] or 0) + 1
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        self.counts.append(call[i])
        return None


async def test_a_forking_layer_runs_the_inner_layers_per_attempt_in_the_decorator() -> None:
    log: list[str] = []
    slot = Slot()
    twice = Twice(log)
    calls: list[int] = []

    @rh.resilient(Recorder("outer", log), twice, slot, Recorder("inner", log))
    async def fn(x: int) -> int:
        calls.append(x)
        return x * 2

    assert await fn(4) == (8, 8)
    assert calls == [4, 4]
    assert slot.counts == [1, 1]  # fresh slots per attempt
    # the forking layer gets no exit; the outer one sees the Short's value
    assert log == [
        "enter outer", "enter twice",
        "enter inner", "exit inner ok", "enter inner", "exit inner ok",
        "exit outer ok",
    ]
    assert twice.seen[0].outer[0].name == "outer"  # type: ignore[attr-defined]


async def test_a_forking_layer_alone_and_in_a_stack_on_requests() -> None:
    log: list[str] = []
    async with MockServer() as server:
        for mws in [(Twice(log),), (rh.Stack(Recorder("outer", log), Twice(log)),)]:
            async with aiohttp.ClientSession(middlewares=mws) as s:
                async with s.get(server.url("/status/200")) as resp:
                    assert resp.status == 200
                    await resp.read()
                assert not s.connector._acquired  # type: ignore[union-attr]
        assert server.count("/status/200") == 4


async def test_an_inner_error_and_a_reentering_layer_stay_inside_the_attempt() -> None:
    log: list[str] = []

    @rh.resilient(Twice(log), Scripted("inner", log, exit="reenter"))
    async def fn() -> str:
        return "v"

    assert await fn() == ("v", "v")
    # each attempt re-runs the handler once, with its own slot
    assert log.count("enter inner") == 2 and log.count("exit inner v") == 4

    @rh.resilient(Recorder("outer", log), Twice(log), Scripted("boom", log, enter="raise"))
    async def bad() -> str:
        return "never"

    log.clear()
    with pytest.raises(ValueError, match="boom"):
        await bad()
    assert log[-1] == "exit outer ValueError"


async def test_fork_answering_none_goes_on_inward() -> None:
    log: list[str] = []

    @rh.resilient(Twice(log, go_on=True), Recorder("inner", log))
    async def fn() -> str:
        return "v"

    assert await fn() == "v"
    assert log == ["enter twice", "enter inner", "exit inner ok", "exit twice"]


async def test_forking_without_fork_is_a_clear_error() -> None:
    class Bad(rh.Layer):
        def enter(self, call: Call, i: int) -> Step:
            return FORK  # type: ignore[no-any-return]

    @rh.resilient(Bad())
    async def fn() -> None:
        return None

    with pytest.raises(NotImplementedError, match=r"Bad\.enter answered FORK"):
        await fn()
