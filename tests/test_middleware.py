"""The layer protocol and its engine: Stack, wrap(), resilient(), on a real loopback server."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from _layers import Again, Answer, Recorder, Refuse

import resilient_http as rh
from resilient_http.testing import MockServer, Reply


async def test_hooks_run_outermost_first_in_and_innermost_first_out() -> None:
    log: list[str] = []
    async with MockServer() as server:
        stack = rh.Stack(Recorder("a", log), Recorder("b", log), Recorder("c", log))
        async with (
            aiohttp.ClientSession(middlewares=(stack,)) as session,
            session.get(server.url("/ok")) as resp,
        ):
            assert resp.status == 200
    assert log == ["enter a", "enter b", "enter c", "exit c ok", "exit b ok", "exit a ok"]


async def test_a_stack_behaves_like_the_same_layers_given_separately() -> None:
    fused: list[str] = []
    separate: list[str] = []
    async with MockServer() as server:
        for _log, middlewares in (
            (fused, (rh.Stack(Recorder("outer", fused), Again(2), Recorder("inner", fused)),)),
            (separate, (Recorder("outer", separate), Again(2), Recorder("inner", separate))),
        ):
            server.script("/x", Reply(503), Reply(200, body="done"))
            async with (
                aiohttp.ClientSession(middlewares=middlewares) as session,
                session.get(server.url("/x")) as resp,
            ):
                assert resp.status == 200
                assert await resp.text() == "done"
        assert server.count("/x") == 4
    assert fused == separate
    assert fused == [
        "enter outer",
        "enter inner",
        "exit inner ok",
        "enter inner",
        "exit inner ok",
        "exit outer ok",
    ]


async def test_an_error_on_the_way_in_reaches_only_the_layers_already_entered() -> None:
    log: list[str] = []
    async with MockServer() as server:
        stack = rh.Stack(Recorder("a", log), Refuse(), Recorder("c", log))
        async with aiohttp.ClientSession(middlewares=(stack,)) as session:
            with pytest.raises(rh.CircuitOpen):
                await session.get(server.url("/ok"))
        assert server.count() == 0
    assert log == ["enter a", "exit a CircuitOpen"]


async def test_stack_flattens_nested_stacks_and_lists_layers_outermost_first() -> None:
    a, b, c = rh.Timeout(3), rh.Timeout(2), rh.Timeout(1)
    stack = rh.Stack(a, rh.Stack(b, c))
    assert stack.layers == (a, b, c)
    assert a.layers == (a,)


@pytest.mark.parametrize("bad", [object(), "Timeout", None])
def test_stack_rejects_what_is_not_a_layer(bad: Any) -> None:
    with pytest.raises(TypeError, match="layers must be resilient_http layers"):
        rh.Stack(rh.Timeout(1), bad)


async def test_wrap_runs_the_layers_outside_the_sessions_own_middlewares() -> None:
    log: list[str] = []

    async def own(req: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        log.append("session middleware")
        return await handler(req)

    async with (
        MockServer() as server,
        aiohttp.ClientSession(middlewares=(own,)) as session,
    ):
        api = rh.wrap(session, Recorder("layer", log))
        async with api.get(server.url("/ok")) as resp:
            assert resp.status == 200
        assert log == ["enter layer", "session middleware", "exit layer ok"]
        log.clear()
        resp = await api.post(server.url("/anything"), data=b"x")  # awaitable form too
        resp.release()
        assert log == ["enter layer", "session middleware", "exit layer ok"]
        log.clear()
        async with api.get(server.url("/ok"), middlewares=()) as resp:  # per-call override
            assert resp.status == 200
        assert log == ["enter layer", "exit layer ok"]
        assert [r.method for r in server.requests] == ["GET", "POST", "GET"]


async def test_wrap_validates_its_arguments() -> None:
    with pytest.raises(TypeError, match="session must be an aiohttp"):
        rh.wrap("not a session", rh.Timeout(1))  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="at least one layer"):
            rh.wrap(session)


async def test_decorator_runs_the_layers_around_the_whole_call() -> None:
    log: list[str] = []
    calls: list[int] = []

    @rh.resilient(Recorder("a", log), Again(3))
    async def work(x: int, *, plus: int = 0) -> int:
        """Docstring kept."""
        calls.append(x)
        return x + plus

    assert await work(1, plus=1) == 2
    assert calls == [1, 1, 1]
    assert log == ["enter a", "exit a ok"]
    assert work.__name__ == "work"
    assert work.__doc__ == "Docstring kept."
    assert isinstance(work.stack, rh.Stack)  # type: ignore[attr-defined]


async def test_decorator_short_circuit_skips_the_function_and_inner_layers() -> None:
    log: list[str] = []
    calls: list[int] = []

    @rh.resilient(Recorder("outer", log), Answer("cached"), Recorder("inner", log))
    async def work() -> str:
        calls.append(1)
        return "fresh"

    assert await work() == "cached"
    assert calls == []
    assert log == ["enter outer", "exit outer ok"]


async def test_decorator_errors_propagate_unchanged_through_layers() -> None:
    log: list[str] = []

    @rh.resilient(Recorder("a", log))
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await boom()
    assert log == ["enter a", "exit a KeyError"]


def test_decorator_rejects_request_only_layers_and_sync_functions() -> None:
    class RequestOnly(rh.Layer):
        __slots__ = ()
        requests_only = True

    with pytest.raises(TypeError, match="only works on HTTP requests"):
        rh.resilient(RequestOnly())
    with pytest.raises(TypeError, match="needs an async function"):
        rh.resilient(rh.Timeout(1))(lambda: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="at least one layer"):
        rh.resilient()


def test_the_fast_path_never_suspends() -> None:
    """With nothing to wait for, the engine finishes in one step: no await yields."""

    @rh.resilient(*(Recorder(str(n), []) for n in range(5)))
    async def instant() -> str:
        return "ok"

    coro = instant()
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    assert done.value.value == "ok"
