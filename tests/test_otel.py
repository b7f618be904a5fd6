"""OpenTelemetry: span events, metrics and per-attempt CLIENT spans, with the real SDK and
in-memory exporters, against a loopback MockServer."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.trace import SpanKind

import resilient_http as rh
from resilient_http import otel
from resilient_http.backoff import Backoff
from resilient_http.testing import FakeClock, MockServer, Reply
from tests._otel import Sdk, make_sdk

pytest_plugins = ("_autojump",)  # the fixtures: clock, server


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    sdk = make_sdk()
    try:
        yield sdk
    finally:
        otel.uninstrument()
        sdk.meter_provider.shutdown()
        sdk.tracer_provider.shutdown()


def instrument(sdk: Sdk, **kw: Any) -> None:
    otel.instrument(
        meter_provider=sdk.meter_provider, tracer_provider=sdk.tracer_provider, **kw
    )


def clients(sdk: Sdk) -> list[Any]:
    return [s for s in sdk.finished() if s.kind is SpanKind.CLIENT]


def total(sdk: Sdk, name: str, **attrs: Any) -> float:
    points = [
        p for p in sdk.points(name)
        if all((p.attributes or {}).get(k) == v for k, v in attrs.items())
    ]
    return sum(getattr(p, "value", None) or getattr(p, "count", 0) for p in points)


def test_importing_resilient_http_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, resilient_http\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_instrument_without_an_sdk_warns_and_leaves_the_layers_alone() -> None:
    # A fresh process: its global providers are still the API's no-op ones.
    code = (
        "import logging, resilient_http as rh\n"
        "from resilient_http import otel\n"
        "from resilient_http._middleware import TELEMETRY\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "otel.instrument(trace_attempts=True)\n"
        "print(otel.is_instrumented(), TELEMETRY.run is None)\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "otel.instrument(tracer_provider=TracerProvider())\n"
        "print(otel.is_instrumented(), TELEMETRY.run is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True", "False"]
    assert "no OpenTelemetry SDK is set up" in out.stderr


async def test_retried_twice_three_client_spans(
    server: MockServer, clock: FakeClock, sdk: Sdk
) -> None:
    server.script("/x", 503, 503, Reply(200, json={"ok": True}))
    instrument(sdk, trace_attempts=True)
    tracer = sdk.tracer_provider.get_tracer("test")
    retry = rh.Retry(clock=clock, backoff=Backoff(1.0, jitter="none"))
    url = server.url("/x").with_user("alice").with_password("s3cret").with_query(token="t0k")
    async with aiohttp.ClientSession(middlewares=(retry,)) as s:
        with tracer.start_as_current_span("parent"):
            async with s.get(url) as resp:
                assert resp.status == 200
    spans = clients(sdk)
    assert len(spans) == 3
    assert [sp.attributes.get("http.request.resend_count") for sp in spans] == [None, 1, 2]
    assert [sp.attributes["http.response.status_code"] for sp in spans] == [503, 503, 200]
    assert [sp.attributes.get("error.type") for sp in spans] == ["503", "503", None]
    first = spans[0].attributes
    assert first["http.request.method"] == "GET" and spans[0].name == "GET"
    assert first["server.address"] == "127.0.0.1"
    assert first["server.port"] == server.url("/").port
    assert "s3cret" not in first["url.full"] and "t0k" not in first["url.full"]
    assert first["url.full"].endswith("/x?token=REDACTED")
    (parent,) = [sp for sp in sdk.finished() if sp.name == "parent"]
    assert all(sp.parent.span_id == parent.context.span_id for sp in spans)
    names = [e.name for e in parent.events]
    assert names.count("retry.scheduled") == 2
    assert names.count("retry.attempt") == 3
    scheduled = next(e for e in parent.events if e.name == "retry.scheduled").attributes
    assert scheduled["event.name"] == "retry.scheduled"
    assert scheduled["resilient_http.layer"] == "Retry"
    assert scheduled["server.address"] == "127.0.0.1"
    assert scheduled["error.type"] == "503"
    assert scheduled["resilient_http.delay"] == 1.0
    # traceparent: each request on the wire carries its own attempt's span id
    sent = [r.headers["traceparent"] for r in server.requests_for("/x")]
    assert [t.split("-")[2] for t in sent] == [f"{sp.context.span_id:016x}" for sp in spans]
    # metrics
    assert total(sdk, "resilient_http.retry.attempts", **{"server.address": "127.0.0.1"}) == 3
    assert total(sdk, "resilient_http.attempt.duration") == 3
    assert total(sdk, "resilient_http.attempt.duration", **{"error.type": "503"}) == 2
    assert total(sdk, "resilient_http.call.duration", **{"http.response.status_code": 200}) == 1
    (point,) = sdk.points("resilient_http.call.duration")
    assert list(point.explicit_bounds) == list(otel.BUCKETS)


async def test_without_trace_attempts_no_client_span_but_metrics(
    server: MockServer, clock: FakeClock, sdk: Sdk
) -> None:
    server.script("/x", 503, 200)
    instrument(sdk)
    retry = rh.Retry(clock=clock, backoff=Backoff(1.0, jitter="none"))
    async with aiohttp.ClientSession(middlewares=(retry,)) as s, s.get(server.url("/x")) as r:
        assert r.status == 200
    assert clients(sdk) == []
    assert "traceparent" not in server.requests_for("/x")[0].headers
    assert total(sdk, "resilient_http.attempt.duration") == 2


async def test_cache_hit_makes_no_client_span_and_counts_a_hit(
    server: MockServer, sdk: Sdk
) -> None:
    server.cacheable("/r", b"hello", cache_control="max-age=60")
    instrument(sdk, trace_attempts=True)
    async with aiohttp.ClientSession(middlewares=(rh.Cache(),)) as s:
        for _ in range(2):
            async with s.get(server.url("/r")) as resp:
                assert await resp.read() == b"hello"
    assert server.count("/r") == 1
    assert len(clients(sdk)) == 1
    assert total(sdk, "resilient_http.cache.requests", result="hit") == 1
    assert total(sdk, "resilient_http.cache.requests", result="miss") == 1
    assert total(sdk, "resilient_http.call.duration") == 2
    assert total(sdk, "resilient_http.attempt.duration") == 1


async def test_ratelimit_metrics(sdk: Sdk) -> None:
    async with MockServer() as server:
        await _ratelimited(server, sdk)


async def _ratelimited(server: MockServer, sdk: Sdk) -> None:
    server.script("/x", 200, 200, 200)
    instrument(sdk)
    limit = rh.RateLimit(100, burst=1)  # real time: 10 ms between requests
    async with aiohttp.ClientSession(middlewares=(limit,)) as s:
        for _ in range(3):
            async with s.get(server.url("/x")) as resp:
                assert resp.status == 200
    assert total(sdk, "resilient_http.ratelimit.requests", result="acquired") == 3
    assert total(sdk, "resilient_http.ratelimit.queued") == 2
    assert total(sdk, "resilient_http.ratelimit.wait.duration") == 2


async def test_breaker_state_and_transitions(server: MockServer, sdk: Sdk) -> None:
    server.script("/x", *([500] * 10))
    instrument(sdk)
    breaker = rh.CircuitBreaker(min_throughput=2, failure_ratio=0.5)
    async with aiohttp.ClientSession(middlewares=(breaker,)) as s:
        for _ in range(4):
            try:
                async with s.get(server.url("/x")):
                    pass
            except rh.CircuitOpen:
                pass
    assert total(sdk, "resilient_http.breaker.transitions",
                 **{"resilient_http.breaker.state": "open"}) == 1
    (state,) = sdk.points("resilient_http.breaker.state")
    assert state.value == 2 and state.attributes["server.address"] == "127.0.0.1"


async def test_uninstrument_stops_everything(server: MockServer, sdk: Sdk) -> None:
    server.script("/x", 200, 200)
    instrument(sdk, trace_attempts=True)
    assert otel.is_instrumented()
    otel.uninstrument()
    assert not otel.is_instrumented()
    async with aiohttp.ClientSession(middlewares=(rh.Retry(),)) as s, s.get(server.url("/x")):
        pass
    assert clients(sdk) == [] and sdk.points("resilient_http.attempt.duration") == []
    assert "traceparent" not in server.requests_for("/x")[0].headers


async def test_beside_aiohttp_client_instrumentation(
    server: MockServer, clock: FakeClock, sdk: Sdk, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    server.script("/x", 503, 503, 200)
    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=sdk.tracer_provider)
    try:
        instrument(sdk, trace_attempts=True)
        retry = rh.Retry(clock=clock, backoff=Backoff(1.0, jitter="none"))
        with caplog.at_level(logging.WARNING, "resilient_http"):
            async with aiohttp.ClientSession(middlewares=(retry,)) as s, s.get(
                server.url("/x")
            ) as resp:
                assert resp.status == 200
    finally:
        instrumentor.uninstrument()
    spans = clients(sdk)
    assert len(spans) == 4
    outer = [sp for sp in spans if sp.parent is None]
    assert len(outer) == 1
    ours = [sp for sp in spans if sp.parent is not None]
    assert {sp.context.trace_id for sp in spans} == {outer[0].context.trace_id}
    assert all(sp.parent.span_id == outer[0].context.span_id for sp in ours)
    assert [sp.attributes.get("http.request.resend_count") for sp in ours] == [None, 1, 2]
    sent = [r.headers["traceparent"].split("-")[2] for r in server.requests_for("/x")]
    assert sent == [f"{sp.context.span_id:016x}" for sp in ours]
    assert [e.name for e in outer[0].events].count("retry.scheduled") == 2
    warnings = [r for r in caplog.records if "CLIENT span" in r.getMessage()]
    assert len(warnings) == 1


def test_instrument_validates() -> None:
    with pytest.raises(TypeError, match="trace_attempts must be a bool, got 1"):
        otel.instrument(trace_attempts=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="meter_provider must be a MeterProvider or None"):
        otel.instrument(meter_provider="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tracer_provider must be a TracerProvider or None"):
        otel.instrument(tracer_provider="x")  # type: ignore[arg-type]
    assert not otel.is_instrumented()


async def test_hedge_counts_and_one_client_span_per_hedged_request(sdk: Sdk) -> None:
    clock = FakeClock()
    async with MockServer(clock=clock) as server:
        server.script("/x", Reply(200, body=b"slow", delay=5), Reply(200, body=b"fast"))
        instrument(sdk, trace_attempts=True)

        async def get(s: aiohttp.ClientSession) -> bytes:
            async with s.get(server.url("/x")) as resp:
                return await resp.read()

        async with aiohttp.ClientSession(middlewares=(rh.Hedge(0.1, clock=clock),)) as s:
            call = asyncio.create_task(get(s))
            for _ in range(500):
                if server.count("/x") == 1:
                    break
                await asyncio.sleep(0.002)
            await clock.advance(0.1)
            assert await call == b"fast"
            for _ in range(5):
                await asyncio.sleep(0)
    assert total(sdk, "resilient_http.hedge.attempts", result="started") == 1
    assert total(sdk, "resilient_http.hedge.attempts", result="won") == 1
    assert total(sdk, "resilient_http.hedge.attempts", result="cancelled") == 1
    spans = clients(sdk)
    assert sorted(
        sp.attributes.get("http.request.resend_count", 0) for sp in spans
    ) == [0, 1]
    assert sorted(sp.attributes.get("error.type", "") for sp in spans) == ["", "CancelledError"]
