"""The layer protocol and its engine: Stack, wrap(), resilient(), on a real loopback server."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest
from _layers import Again, Answer, Recorder, Refuse, Scripted

import resilient_http as rh
from resilient_http import _middleware
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


async def test_layers_made_per_request_reuse_the_code_generated_for_their_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path is generated once per shape (the classes of a stack's layers), not per
    object: a stack or a layer made for every request costs no compilation."""
    compiled: list[Any] = []
    compile_ = _middleware._compile
    monkeypatch.setattr(_middleware, "_compile", lambda *a: compiled.append(a) or compile_(*a))
    monkeypatch.setattr(_middleware, "_SHAPES", {})
    monkeypatch.setattr(_middleware, "_STACK_CLASSES", {})
    log: list[str] = []
    async with MockServer() as server, aiohttp.ClientSession() as session:
        for n in range(6):
            per_request = (rh.Stack(rh.Timeout(5 + n), Recorder(str(n), log)), rh.Timeout(9 + n))
            async with session.get(server.url("/ok"), middlewares=per_request) as resp:
                assert resp.status == 200
            assert len(compiled) == 1  # the stack's shape; Timeout's own was made with its class
    steps = [f"{op} {n}" for n in range(6) for op in ("enter", "exit")]
    assert log == [step + (" ok" if step.startswith("exit") else "") for step in steps]
    a, b = rh.Stack(rh.Timeout(1), rh.Retry()), rh.Stack(rh.Timeout(2), rh.Retry(attempts=2))
    assert type(a) is type(b) and isinstance(a, rh.Stack) and type(a).__name__ == "Stack"
    assert type(rh.Stack(rh.Retry(), rh.Timeout(1))) is not type(a)
    assert copy.copy(a).layers == a.layers and type(copy.copy(a)) is type(a)


async def test_a_subclass_keeps_its_own_call_and_its_own_hooks() -> None:
    """A user's layer subclass that wraps ``__call__`` keeps it (the generated one does not
    replace it, nor in its subclasses), and ``super().__call__`` runs the subclass's hooks."""

    class Wrapping(Recorder):
        __slots__ = ()

        def __call__(self, request: Any, handler: Any) -> Any:
            self.log.append("call")
            return super().__call__(request, handler)

        def enter(self, call: Any, i: int) -> None:
            self.log.append(f"own enter {self.name}")

    class Below(Wrapping):
        __slots__ = ()

    log: list[str] = []
    async with MockServer() as server, aiohttp.ClientSession() as session:
        for layer in (Wrapping("w", log), Below("b", log)):
            async with session.get(server.url("/ok"), middlewares=(layer,)) as resp:
                assert resp.status == 200
    assert log == ["call", "own enter w", "exit w ok", "call", "own enter b", "exit b ok"]


async def test_a_stack_subclass_keeps_its_init_and_its_own_call() -> None:
    log: list[str] = []

    class Named(rh.Stack):
        __slots__ = ("name",)

        def __init__(self, *layers: rh.Layer, name: str) -> None:
            super().__init__(*layers)
            self.name = name

    class Counting(Named):
        __slots__ = ()

        def __call__(self, request: Any, handler: Any) -> Any:
            log.append(f"call {self.name}")
            return super().__call__(request, handler)

    named = Named(Recorder("a", log), name="n")
    counting = Counting(Recorder("b", log), name="c")
    assert isinstance(counting, Named) and named.name == "n" and counting.layers[0].name == "b"
    async with MockServer() as server, aiohttp.ClientSession() as session:
        for stack in (named, counting):
            async with session.get(server.url("/ok"), middlewares=(stack,)) as resp:
                assert resp.status == 200
    assert log == ["enter a", "exit a ok", "call c", "enter b", "exit b ok"]


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


# -- the generated fast path and the general engine agree -----------------------------------

_GENERAL = tuple(rh.Layer() for _ in range(40))
"""Layers without hooks: padding a stack with them makes it too deep for the generated fast
path, so it runs on the general engine from the start, with the same hooks."""

_ANSWERS = [
    ("none", "none"),
    ("short", "none"),
    ("await-none", "none"),
    ("await-short", "none"),
    ("raise", "none"),
    ("none", "short"),
    ("none", "raise"),
    ("none", "reenter"),
    ("none", "await-none"),
    ("none", "await-short"),
    ("none", "await-reenter"),
]


async def _through(stack: rh.Stack, url: str, mode: str = "request") -> str:
    """The outcome of one call through the stack: as a middleware or around a function."""

    @rh.resilient(stack)
    async def fetch(session: aiohttp.ClientSession) -> int:
        async with session.get(url) as resp:
            resp.raise_for_status()
            return resp.status

    try:
        if mode == "request":
            async with (
                aiohttp.ClientSession(middlewares=(stack,)) as session,
                session.get(url) as resp,
            ):
                return f"response {resp.status}"
        async with aiohttp.ClientSession() as session:
            return f"value {await fetch(session)}"
    except Exception as exc:
        return f"raised {type(exc).__name__} {exc}"


@pytest.mark.parametrize(("enter", "exit"), _ANSWERS)
@pytest.mark.parametrize("route", ["/ok", "/down", "/flaky"])
@pytest.mark.parametrize("mode", ["request", "decorator"])
async def test_each_answer_of_the_middle_layer_runs_the_same_on_both_engines(
    enter: str, exit: str, route: str, mode: str
) -> None:
    async with MockServer() as server:
        url = server.url(route)
        runs = []
        for padding in ((), _GENERAL):
            server.script("/down", Reply(503), Reply(503), Reply(503))
            server.script("/flaky", Reply(reset=True), Reply(200))
            log: list[str] = []
            layers = (
                Recorder("a", log),
                Scripted("b", log, enter=enter, exit=exit),
                Recorder("c", log),
            )
            outcome = await _through(rh.Stack(*layers, *padding), url, mode)
            runs.append((outcome, log))
    assert runs[0] == runs[1]


async def test_the_engine_follows_each_answer() -> None:
    """What the agreeing engines do, spelled out for the answers that change the course."""
    async with MockServer() as server:
        cases = {
            ("short", "none"): (
                "response 299",
                ["enter a", "enter b", "exit a ok"],
            ),
            ("raise", "none"): (
                "raised ValueError b",
                ["enter a", "enter b", "exit a ValueError"],
            ),
            ("none", "raise"): (
                "raised ValueError b",
                ["enter a", "enter b", "enter c", "exit c ok", "exit b 200", "exit a ValueError"],
            ),
            ("none", "await-reenter"): (
                "response 200",
                [
                    "enter a", "enter b", "enter c", "exit c ok", "exit b 200", "awaited b",
                    "enter c", "exit c ok", "exit b 200", "awaited b", "exit a ok",
                ],
            ),
            ("none", "reenter", "/flaky"): (
                "response 200",
                [
                    "enter a", "enter b", "enter c", "exit c ClientOSError",
                    "exit b ClientOSError", "enter c", "exit c ok", "exit b 200",
                    "exit a ok",
                ],
            ),
        }
        for (enter, exit, *route), (outcome, expected) in cases.items():
            server.script("/flaky", Reply(reset=True), Reply(200))
            log: list[str] = []
            stack = rh.Stack(
                Recorder("a", log), Scripted("b", log, enter=enter, exit=exit), Recorder("c", log)
            )
            assert await _through(stack, server.url(route[0] if route else "/ok")) == outcome
            assert log == expected


async def test_a_failed_body_read_is_released_and_seen_by_every_layer() -> None:
    log: list[str] = []
    async with MockServer() as server:
        server.script("/cut", Reply(200, body="x" * 100, truncate=True))
        stack = rh.Stack(Recorder("a", log), rh.Timeout(30), Recorder("c", log))
        outcome = await _through(stack, server.url("/cut"))
    assert outcome.startswith("raised ClientPayloadError")
    assert log == ["enter a", "enter c", "exit c ClientPayloadError", "exit a ClientPayloadError"]
