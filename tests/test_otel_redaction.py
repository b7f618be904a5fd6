"""No secret from the redaction list reaches a span attribute, a span event attribute or a
metric attribute: a property test over real requests to a loopback MockServer (300 cases in
``make test``, 10,000 in ``make fuzz``)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resilient_http as rh
from resilient_http import otel
from resilient_http.testing import MockServer, Reply
from tests._otel import Sdk, make_sdk
from tests.test_credentials_matrix import LOGGED_QUERY

_SECRET = st.text(min_size=0, max_size=12).map(lambda s: "S3CR3T" + s)
# aiohttp sends user info as latin-1 Basic credentials: printable ASCII there.
_ASCII_SECRET = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12).map(
    lambda s: "S3CR3T" + s
)
_PLAIN = st.text(alphabet="abcdefghij0123456789-._~", min_size=1, max_size=8)


def _enc(s: str) -> str:
    return quote(s, safe="")


@st.composite
def _request(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A path-and-query with secrets in every credential position, user info, and headers."""
    userinfo = draw(st.sampled_from(["", "user", "both"]))
    auth = ""
    if userinfo == "user":
        auth = f"{_enc(draw(_ASCII_SECRET).replace(':', ''))}@"  # no ":" in a login
    elif userinfo == "both":
        login = _enc(draw(_ASCII_SECRET).replace(":", ""))
        auth = f"{login}:{_enc(draw(_ASCII_SECRET))}@"
    pairs = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(LOGGED_QUERY))
            name = draw(st.sampled_from([name, name.upper(), name.lower(), _enc(name)]))
            pairs.append(f"{name}={_enc(draw(_SECRET))}")
        else:
            pairs.append(f"{draw(st.sampled_from(['q', 'page', 'x']))}={draw(_PLAIN)}")
    query = ("?" + "&".join(pairs)) if pairs else ""
    names = ["Cookie", "Proxy-Authorization", "X-Api-Key"]
    if not auth:  # aiohttp refuses both (user info becomes the Authorization header)
        names.append("Authorization")
    chosen = draw(st.lists(st.sampled_from(names), unique=True))
    headers = {name: "S3CR3T" + draw(_PLAIN) for name in chosen}
    return auth + "|/p" + query, headers


class _Loop:
    """A MockServer, an aiohttp session with layers and an instrumented SDK, on an event loop
    in a thread: hypothesis drives the examples synchronously."""

    def __init__(self, sdk: Sdk) -> None:
        self.sdk = sdk
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = MockServer()
        self.run(self.server.__aenter__())
        stack = rh.Stack(rh.Cache(), rh.Retry(attempts=2))

        async def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(middlewares=(stack,))

        self.session = self.run(session())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def fetch(self, target: str, headers: dict[str, str]) -> None:
        auth, path = target.split("|", 1)
        self.server.script(
            "/p",
            Reply(503, headers={"Retry-After": "0"}),
            Reply(200, headers={"Cache-Control": "no-store"}),
        )
        port = self.server.url("/").port
        async with self.session.get(f"http://{auth}127.0.0.1:{port}{path}", headers=headers) as r:
            await r.read()

    def close(self) -> None:
        self.run(self.session.close())
        self.run(self.server.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def live() -> Iterator[_Loop]:
    sdk = make_sdk()
    otel.instrument(
        trace_attempts=True, meter_provider=sdk.meter_provider,
        tracer_provider=sdk.tracer_provider,
    )
    loop = _Loop(sdk)
    try:
        yield loop
    finally:
        otel.uninstrument()
        loop.close()
        sdk.meter_provider.shutdown()
        sdk.tracer_provider.shutdown()


_LONG = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


@pytest.mark.timeout(1800 if _LONG else 60)
@settings(
    max_examples=10_000 if _LONG else 300,
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_request())
def test_no_secret_in_any_span_event_or_metric_attribute(
    live: _Loop, request: tuple[str, dict[str, str]]
) -> None:
    sdk = live.sdk
    sdk.spans.clear()
    tracer = sdk.tracer_provider.get_tracer("test")

    async def call() -> None:
        with tracer.start_as_current_span("parent"):
            await live.fetch(*request)

    live.run(call())
    spans = sdk.finished()
    assert len(spans) >= 3  # the parent and two attempts: something was recorded
    shown: list[Any] = []
    for span in spans:
        shown.append(dict(span.attributes or {}))
        shown.extend(dict(e.attributes or {}) for e in span.events)
    assert any(e.name == "retry.scheduled" for sp in spans for e in sp.events)
    shown.extend(sdk.all_metric_attributes())
    assert "S3CR3T" not in repr(shown)
