"""Every layer behaves the same fused in a ``Stack`` as given separately in ``middlewares=``,
and the whole stack works together (DESIGN.md §2: ``Stack(a, b)`` ≡ ``(a, b)``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.testing import FakeClock, MockServer, Reply

Transcript = list[tuple[str, Any]]


async def drive(clock: FakeClock, calls: Any, step: float = 0.125, limit: int = 400) -> Any:
    """Run ``calls`` while moving fake time forward in small steps, with real I/O between."""
    task = asyncio.ensure_future(calls)
    for _ in range(limit):
        if task.done():
            break
        await asyncio.sleep(0.001)
        await clock.advance(step)
    return await task


async def outcomes(session: aiohttp.ClientSession, urls: list[Any]) -> Transcript:
    """Issue the calls one after the other; record status and body, or the error's type."""
    seen: Transcript = []
    for url in urls:
        try:
            async with session.get(url) as resp:
                seen.append((str(resp.status), await resp.text()))
        except Exception as exc:  # the type is what the transcript compares
            seen.append(("error", type(exc).__name__))
    return seen


Scenario = Callable[[FakeClock], tuple[tuple[rh.Layer, ...], Callable[[MockServer], list[Any]]]]


def retry_case(clock: FakeClock) -> Any:
    layers = (
        rh.Timeout(30, clock=clock),
        rh.Retry(4, backoff=rh.Backoff(0.5, jitter="none"), clock=clock),
        rh.Timeout(5, clock=clock),
    )

    def setup(server: MockServer) -> list[Any]:
        server.script("/flaky", Reply(503), Reply(200, delay=10), Reply(200, body="third"))
        return [server.url("/flaky")]

    return layers, setup


def ratelimit_case(clock: FakeClock) -> Any:
    layers = (rh.RateLimit(2, per=1.0, clock=clock),)

    def setup(server: MockServer) -> list[Any]:
        return [server.url("/ok")] * 5

    return layers, setup


def cache_case(clock: FakeClock) -> Any:
    layers = (rh.Cache(ttl=60, clock=clock),)

    def setup(server: MockServer) -> list[Any]:
        server.cacheable("/c", "cached body", etag='"v1"', cache_control="max-age=60")
        return [server.url("/c")] * 3

    return layers, setup


def breaker_case(clock: FakeClock) -> Any:
    layers = (rh.CircuitBreaker(min_throughput=2, break_for=5, clock=clock),)

    def setup(server: MockServer) -> list[Any]:
        server.script("/down", Reply(503))
        return [server.url("/down")] * 4

    return layers, setup


def fieldmask_case(clock: FakeClock) -> Any:
    layers = (rh.FieldMask(["id", "name"]), rh.Timeout(5, clock=clock))

    def setup(server: MockServer) -> list[Any]:
        return [server.url("/anything")]

    return layers, setup


def everything_case(clock: FakeClock) -> Any:
    layers = (
        rh.FieldMask(["id"]),
        rh.Cache(ttl=60, clock=clock),
        rh.Timeout(30, clock=clock),
        rh.Retry(4, backoff=rh.Backoff(0.25, jitter="none"), clock=clock),
        rh.CircuitBreaker(clock=clock),
        rh.RateLimit(5, per=1.0, clock=clock),
        rh.Timeout(5, clock=clock),
    )

    def setup(server: MockServer) -> list[Any]:
        server.script("/items", Reply(503), Reply(200, json={"items": [1, 2]}))
        return [server.url("/items")] * 3 + [server.url("/ok")] * 6

    return layers, setup


CASES = {
    "Retry": retry_case,
    "RateLimit": ratelimit_case,
    "Cache": cache_case,
    "CircuitBreaker": breaker_case,
    "FieldMask": fieldmask_case,
    "all layers": everything_case,
}


async def run(scenario: Any, fused: bool) -> tuple[Transcript, int, list[str], float]:
    clock = FakeClock()
    layers, setup = scenario(clock)
    middlewares = (rh.Stack(*layers),) if fused else layers
    async with MockServer(clock=clock) as server:
        urls = setup(server)
        async with aiohttp.ClientSession(middlewares=middlewares) as session:
            seen = await drive(clock, outcomes(session, urls))
        port = str(server.port)  # differs between runs; echoed in /anything's Host header
        seen = [(status, text.replace(port, "PORT")) for status, text in seen]
        wire = [f"{r.method} {r.url}" for r in server.requests]
        for layer in layers:
            if isinstance(layer, rh.Cache):
                await layer.close()
        return seen, server.count(), wire, clock.now()


@pytest.mark.parametrize("name", list(CASES))
async def test_fused_and_separate_layers_behave_the_same(name: str) -> None:
    fused = await run(CASES[name], fused=True)
    separate = await run(CASES[name], fused=False)
    assert fused[:3] == separate[:3]  # outcomes, upstream count, what reached the wire
    assert abs(fused[3] - separate[3]) <= 0.5  # same fake time, to the driving step


async def test_each_case_shows_its_layer_at_work() -> None:
    """Guards the test above: each scenario must exercise its layer, not pass trivially."""
    seen, count, wire, elapsed = await run(retry_case, fused=True)
    assert seen == [("200", "third")] and count == 3  # 503, attempt timeout, success
    seen, count, wire, elapsed = await run(ratelimit_case, fused=True)
    assert count == 5 and elapsed >= 1.0  # burst of 2, then 2 per second
    seen, count, wire, elapsed = await run(cache_case, fused=True)
    assert count == 1 and seen == [("200", "cached body")] * 3
    seen, count, wire, elapsed = await run(breaker_case, fused=True)
    assert count == 2 and seen[-1] == ("error", "CircuitOpen")
    seen, count, wire, elapsed = await run(fieldmask_case, fused=True)
    assert wire == ["GET /anything?fields=id,name"] or wire == ["GET /anything?fields=id%2Cname"]
    seen, count, wire, elapsed = await run(everything_case, fused=True)
    assert [s for s, _ in seen] == ["200"] * 9
    assert wire.count("GET /items?fields=id") == 2  # one retry, then cache hits
