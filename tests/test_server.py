"""MockServer, exercised over real sockets with a real aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from resilient_http.testing import FakeClock, MockServer, RecordedRequest, Reply
from resilient_http.testing.process import MockServerProcess

Factory = Callable[..., Awaitable[MockServer]]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # A deadline on every request, so a server that fails to answer fails the test fast.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        yield client


async def fetch(
    session: aiohttp.ClientSession, url: Any, method: str = "GET", **kwargs: Any
) -> tuple[int, Any, bytes]:
    async with session.request(method, url, **kwargs) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def statuses(session: aiohttp.ClientSession, url: Any, n: int) -> list[int]:
    return [(await fetch(session, url))[0] for _ in range(n)]


# -- Reply -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"status": "200"}, TypeError, "status"),
        ({"status": True}, TypeError, "status"),
        ({"status": 99}, ValueError, "status"),
        ({"status": 600}, ValueError, "status"),
        ({"status": 204, "body": b"x"}, ValueError, "204"),
        ({"body": 3}, TypeError, "body"),
        ({"body": b"x", "json": {}}, ValueError, "json"),
        ({"json": {1, 2}}, TypeError, "json"),
        ({"headers": "X-A: b"}, TypeError, "headers"),
        ({"headers": {"X-A": 1}}, TypeError, "headers"),
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, ValueError, "headers"),
        ({"delay": -1}, ValueError, "delay"),
        ({"delay": float("nan")}, ValueError, "delay"),
        ({"delay": "1"}, TypeError, "delay"),
        ({"drip": (0, 0.1), "body": b"x"}, ValueError, "chunk_bytes"),
        ({"drip": 5, "body": b"x"}, TypeError, "drip"),
        ({"drip": (1, -0.1), "body": b"x"}, ValueError, "interval"),
        ({"truncate": True}, ValueError, "truncate"),
        ({"truncate": True, "reset": True, "body": b"x"}, ValueError, "exclusive"),
        ({"reset": 1}, TypeError, "reset"),
    ],
)
def test_reply_is_validated(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        Reply(**kwargs)


def test_reply_normalises_its_arguments() -> None:
    reply = Reply(201, headers={"X-A": "1"}, body="héllo", delay=timedelta(milliseconds=250),
                  drip=[2, 0]) # type: ignore[arg-type]
    assert reply.headers == (("X-A", "1"),)
    assert reply.payload == "héllo".encode()
    assert ("Content-Type", "text/plain; charset=utf-8") in reply.header_items
    assert reply.delay_seconds == 0.25
    assert reply.drip == (2, 0.0)
    assert Reply(json=[1]).payload == b"[1]"
    custom = Reply(body=b"{}", headers=[("Content-Type", "application/x"), ("X-B", "1")])
    assert [v for k, v in custom.header_items if k == "Content-Type"] == ["application/x"]
    with pytest.raises(AttributeError):
        reply.status = 500  # type: ignore[misc]


# -- lifecycle and built-in routes -------------------------------------------------------


async def test_lifecycle() -> None:
    server = MockServer()
    with pytest.raises(RuntimeError, match="not started"):
        server.url("/x")
    await server.start()
    try:
        assert server.port > 0
        assert str(server.origin) == f"http://127.0.0.1:{server.port}"
        assert str(server.url("/a/b?c=1")) == f"http://127.0.0.1:{server.port}/a/b?c=1"
        with pytest.raises(ValueError, match="path"):
            server.url("nope")
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
    finally:
        await server.close()
    await server.close()  # idempotent
    with pytest.raises(ValueError, match="port"):
        MockServer(port=70000)
    with pytest.raises(TypeError, match="clock"):
        MockServer(clock=object())  # type: ignore[arg-type]


async def test_builtin_routes(mock_server: MockServer, session: aiohttp.ClientSession) -> None:
    status, _, body = await fetch(session, mock_server.url("/ok"))
    assert (status, body) == (200, b"ok")
    status, _, body = await fetch(session, mock_server.url("/status/418"))
    assert (status, body) == (418, b"418")
    status, _, body = await fetch(session, mock_server.url("/status/204"))
    assert (status, body) == (204, b"")
    assert (await fetch(session, mock_server.url("/status/abc")))[0] == 400
    assert (await fetch(session, mock_server.url("/status/100")))[0] == 400
    assert (await fetch(session, mock_server.url("/nowhere")))[0] == 404
    status, headers, body = await fetch(session, mock_server.url("/ok"), "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "2")


async def test_anything_echoes_the_request(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    url = mock_server.url("/anything/deep/path?a=1&b=2&a=3")
    status, _, body = await fetch(session, url, "POST", json={"k": [1, 2]},
                                  headers={"X-Trace": "abc"})
    assert status == 200
    echo = json.loads(body)
    assert echo["method"] == "POST"
    assert echo["path"] == "/anything/deep/path"
    assert echo["query"] == [["a", "1"], ["b", "2"], ["a", "3"]]
    assert echo["args"] == {"a": ["1", "3"], "b": "2"}
    assert echo["headers"]["X-Trace"] == "abc"
    assert json.loads(echo["body"]) == {"k": [1, 2]}
    assert echo["json"] == {"k": [1, 2]}
    status, _, body = await fetch(session, mock_server.url("/anything"))
    assert json.loads(body)["body"] == "" and json.loads(body)["method"] == "GET"


# -- scripts -------------------------------------------------------------------------------


async def test_script_plays_in_order_then_repeats_the_last(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.script("/s", 503, Reply(429, headers={"Retry-After": "2"}),
                       Reply(200, json={"id": 7}))
    results = [await fetch(session, mock_server.url("/s?page=1")) for _ in range(5)]
    assert [r[0] for r in results] == [503, 429, 200, 200, 200]
    assert results[1][1]["Retry-After"] == "2"
    assert json.loads(results[2][2]) == {"id": 7}
    assert results[2][1]["Content-Type"] == "application/json"


async def test_exhausted_script_without_repeat_answers_500(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.script("/once", 200, repeat_last=False)
    assert (await fetch(session, mock_server.url("/once")))[0] == 200
    status, headers, body = await fetch(session, mock_server.url("/once"))
    assert status == 500
    assert headers["X-Mock-Script-Exhausted"] == "1"
    assert b"exhausted" in body


async def test_script_validation(mock_server: MockServer) -> None:
    with pytest.raises(ValueError, match="at least one"):
        mock_server.script("/x")
    with pytest.raises(TypeError, match="replies"):
        mock_server.script("/x", "200")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path"):
        mock_server.script("x", 200)
    with pytest.raises(ValueError, match="query"):
        mock_server.script("/x?a=1", 200)
    with pytest.raises(ValueError, match="reserved"):
        mock_server.script("/__control/stats", 200)
    with pytest.raises(ValueError, match="method"):
        mock_server.script("/x", 200, method="GET /x")


async def test_routes_by_method(mock_server: MockServer, session: aiohttp.ClientSession) -> None:
    mock_server.script("/m", 201, method="post")
    assert (await fetch(session, mock_server.url("/m"), "POST"))[0] == 201
    status, headers, _ = await fetch(session, mock_server.url("/m"), "GET")
    assert (status, headers["Allow"]) == (405, "POST")
    mock_server.script("/m", 202)  # any method; the exact-method route still wins
    assert (await fetch(session, mock_server.url("/m"), "POST"))[0] == 201
    assert (await fetch(session, mock_server.url("/m"), "DELETE"))[0] == 202
    mock_server.remove("/m", method="POST")
    assert (await fetch(session, mock_server.url("/m"), "POST"))[0] == 202
    mock_server.remove("/m")
    assert (await fetch(session, mock_server.url("/m"), "POST"))[0] == 404


async def test_fail_then_succeed(mock_server: MockServer, session: aiohttp.ClientSession) -> None:
    mock_server.fail_then_succeed("/f", failures=2, status=502, headers={"Retry-After": "0"},
                                  success=Reply(200, body="done"))
    results = [await fetch(session, mock_server.url("/f")) for _ in range(4)]
    assert [r[0] for r in results] == [502, 502, 200, 200]
    assert results[0][1]["Retry-After"] == "0"
    assert results[3][2] == b"done"
    mock_server.fail_then_succeed("/g")
    assert await statuses(session, mock_server.url("/g"), 3) == [503, 200, 200]
    with pytest.raises(ValueError, match="failures"):
        mock_server.fail_then_succeed("/g", failures=-1)


# -- time: delay and drip on a fake clock -----------------------------------------------


async def test_delay_waits_on_the_servers_fake_clock(
    mock_server_factory: Factory, fake_clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    started = time.perf_counter()
    clock = fake_clock
    server = await mock_server_factory(clock=clock)
    server.script("/slow", Reply(200, body="late", delay=30.0))
    task = asyncio.create_task(fetch(session, server.url("/slow")))
    await server.wait_for_requests(1)
    await clock.advance(29.9)
    assert clock.pending() == 1, "the handler should still be sleeping on the fake clock"
    assert not task.done()
    await clock.advance(0.1)
    status, headers, body = await asyncio.wait_for(task, 2.0)
    assert (status, body) == (200, b"late")
    # With a custom clock, Date follows it: 30 fake seconds after the request arrived.
    date = parsedate_to_datetime(headers["Date"]).timestamp()
    assert abs(date - (server.wall_time())) <= 1.0
    assert server.requests[0].time == 0.0
    assert time.perf_counter() - started < 0.1
    # A Date of the reply's own wins over the clock's.
    server.script("/dated", Reply(headers={"Date": "Thu, 01 Jan 2015 00:00:00 GMT"}))
    _, headers, _ = await fetch(session, server.url("/dated"))
    assert headers.getall("Date") == ["Thu, 01 Jan 2015 00:00:00 GMT"]


async def test_drip_sends_the_body_in_chunks_on_the_clock(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.script("/drip", Reply(body=b"aabbccdd", drip=(2, 1.0)))
    async with session.get(server.url("/drip")) as resp:
        assert resp.headers["Content-Length"] == "8"
        assert await asyncio.wait_for(resp.content.readexactly(2), 2.0) == b"aa"
        for expected in (b"bb", b"cc", b"dd"):
            assert clock.pending() == 1, "the next chunk must wait for the clock"
            await clock.advance(1.0)
            assert await asyncio.wait_for(resp.content.readexactly(2), 2.0) == expected
        assert await resp.read() == b""
    assert clock.now() == 3.0


async def test_client_going_away_cancels_a_sleeping_handler(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.script("/hang", Reply(delay=3600))
    task = asyncio.create_task(fetch(session, server.url("/hang")))
    await server.wait_for_requests(1)
    assert clock.pending() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(1000):
        if clock.pending() == 0:
            break
        await asyncio.sleep(0.001)
    assert clock.pending() == 0


async def test_close_does_not_wait_for_sleeping_handlers(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    server = MockServer(clock=clock)
    await server.start()
    server.script("/hang", Reply(delay=3600))
    task = asyncio.create_task(fetch(session, server.url("/hang")))
    await server.wait_for_requests(1)
    started = time.perf_counter()
    await server.close()
    assert time.perf_counter() - started < 0.5
    with pytest.raises(aiohttp.ClientError):
        await task


async def test_wait_for_requests_times_out(mock_server: MockServer) -> None:
    with pytest.raises(TimeoutError, match="0 of 1"):
        await mock_server.wait_for_requests(1, path="/never", timeout=0.005)


# -- faults on the wire -------------------------------------------------------------------


async def test_truncate_sends_half_the_announced_body(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.script("/t", Reply(body=b"0123456789", truncate=True))
    async with session.get(mock_server.url("/t")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "10"
        assert await resp.content.readexactly(5) == b"01234"
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert mock_server.stats()["paths"]["/t"]["statuses"] == {"truncated": 1}


async def test_truncate_with_drip(mock_server: MockServer, session: aiohttp.ClientSession) -> None:
    mock_server.script("/td", Reply(body=b"abcdefgh", drip=(1, 0.0), truncate=True))
    async with session.get(mock_server.url("/td")) as resp:
        assert await resp.content.readexactly(4) == b"abcd"
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_reset_closes_the_connection_before_any_response(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.script("/r", Reply(reset=True))
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await fetch(session, mock_server.url("/r"), "POST", data=b"payload")
    assert mock_server.count("/r") == 1  # recorded, body included
    assert mock_server.requests_for("/r")[0].body == b"payload"
    # aiohttp itself re-sends an idempotent request once after a reset: two requests here.
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await fetch(session, mock_server.url("/r"))
    assert mock_server.count("/r") == 3
    assert mock_server.stats()["paths"]["/r"]["statuses"] == {"reset": 3}
    # The server still serves afterwards.
    assert (await fetch(session, mock_server.url("/ok")))[0] == 200


async def test_reset_once_is_hidden_by_aiohttps_own_retry_for_get(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.script("/r1", Reply(reset=True), Reply(200, body="second"))
    assert (await fetch(session, mock_server.url("/r1")))[::2] == (200, b"second")
    assert [r.method for r in mock_server.requests_for("/r1")] == ["GET", "GET"]


# -- rate limits ----------------------------------------------------------------------------


def _rate_headers(headers: Any) -> dict[str, str]:
    names = ("RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining",
             "X-RateLimit-Reset", "Retry-After")
    return {name: headers[name] for name in names if name in headers}


async def test_rate_limit_with_fake_clock(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.rate_limited("/api", 10)
    url = server.url("/api")
    results = [await fetch(session, url) for _ in range(11)]
    assert [r[0] for r in results] == [200] * 10 + [429]
    first, last_ok, limited = (_rate_headers(results[i][1]) for i in (0, 9, 10))
    assert first["RateLimit-Policy"] == '"default";q=10;w=1'
    assert first["RateLimit"] == '"default";r=9;t=1'
    assert first["X-RateLimit-Limit"] == "10"
    assert first["X-RateLimit-Remaining"] == "9"
    assert last_ok["X-RateLimit-Remaining"] == "0"
    assert limited["Retry-After"] == "1"
    assert limited["RateLimit"] == '"default";r=0;t=1'
    assert limited["X-RateLimit-Remaining"] == "0"
    assert int(limited["X-RateLimit-Reset"]) == math.ceil(server.wall_time() + 1.0)
    assert abs(int(limited["X-RateLimit-Reset"]) - time.time()) < 5
    assert json.loads(results[10][2]) == {"error": "rate limited"}
    assert "Retry-After" not in first

    await clock.advance(0.1)  # one token back, no more
    assert await statuses(session, url, 2) == [200, 429]
    await clock.advance(1.0)  # the bucket is full again, but never deeper than the burst
    assert await statuses(session, url, 11) == [200] * 10 + [429]
    assert len(server.requests_for("/api")) == 24  # rejected requests are recorded too


async def test_rate_limit_retry_after_counts_to_the_next_token(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.rate_limited("/slow", 1, per=10.0, burst=2)
    url = server.url("/slow")
    assert await statuses(session, url, 2) == [200, 200]
    _, headers, _ = await fetch(session, url)
    assert headers["Retry-After"] == "10"
    assert headers["RateLimit"] == '"default";r=0;t=20'
    await clock.advance(4.0)
    _, headers, _ = await fetch(session, url)
    assert headers["Retry-After"] == "6"
    await clock.advance(6.0)
    assert await statuses(session, url, 2) == [200, 429]


async def test_rate_limit_can_change_and_be_lifted_at_runtime(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.rate_limited("/api", 2, retry_after=7)
    url = server.url("/api")
    codes = await statuses(session, url, 3)
    assert codes == [200, 200, 429]
    assert (await fetch(session, url))[1]["Retry-After"] == "7"
    server.set_rate("/api", None)
    results = [await fetch(session, url) for _ in range(20)]
    assert {r[0] for r in results} == {200}
    assert "RateLimit" not in results[0][1]
    server.set_rate("/api", 5)  # a new bucket starts full
    assert await statuses(session, url, 6) == [200] * 5 + [429]
    server.set_rate("/api", 1, per=2.0)  # earned tokens are capped at the new burst
    await clock.advance(2.0)
    _, headers, _ = await fetch(session, url)
    assert headers["RateLimit-Policy"] == '"default";q=1;w=2'
    assert await statuses(session, url, 1) == [429]


async def test_rate_limit_wraps_what_the_route_answers(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.script("/s", 503, 201)
    server.rate_limited("/s", 2)
    server.rate_limited("/anything", 1)
    assert await statuses(session, server.url("/s"), 3) == [503, 201, 429]
    status, headers, body = await fetch(session, server.url("/anything"))
    assert status == 200 and json.loads(body)["path"] == "/anything"
    assert headers["X-RateLimit-Remaining"] == "0"
    server.rate_limited("/plain", 1)
    status, _, body = await fetch(session, server.url("/plain"))
    assert (status, json.loads(body)) == (200, {"ok": True})


async def test_rate_limit_holds_under_concurrency(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    server = await mock_server_factory(clock=FakeClock())
    server.rate_limited("/c", 10)
    results = await asyncio.gather(*(fetch(session, server.url("/c")) for _ in range(25)))
    assert sorted(r[0] for r in results) == [200] * 10 + [429] * 15


async def test_outage_window_on_the_servers_clock(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.script("/w", Reply(200, body="up"))
    server.rate_limited("/w", 100)
    server.outage("/w", start=1.0, end=2.5, status=502)
    url = server.url("/w")
    assert await statuses(session, url, 2) == [200, 200]
    await clock.advance(1.0)  # the window opens: every reply is the outage status
    status, headers, body = await fetch(session, url)
    assert status == 502 and b"outage" in body
    assert "RateLimit" not in headers  # the window comes before the route's rate limit
    await clock.advance(1.0)
    assert await statuses(session, url, 2) == [502, 502]
    await clock.advance(0.5)  # back: the route answers as configured
    status, headers, body = await fetch(session, url)
    assert (status, body) == (200, b"up") and "RateLimit" in headers
    window = server.stats()["paths"]["/w"]["outage"]
    assert window == {"start": 1.0, "end": 2.5, "before": 2, "during": 3, "after": 1}
    assert server.stats()["paths"]["/w"]["statuses"] == {"200": 3, "502": 3}


async def test_outage_window_counts_from_when_it_is_set_and_can_be_replaced(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    await clock.advance(10.0)
    server.outage("/down")  # from now, no end; an unscripted path answers 200 outside it
    assert await statuses(session, server.url("/down"), 1) == [503]
    await clock.advance(1000.0)
    assert await statuses(session, server.url("/down"), 1) == [503]
    server.configure({"routes": [{"path": "/down", "outage": {"start": 0.5, "end": 0.5}}]})
    status, _, body = await fetch(session, server.url("/down"))
    assert (status, json.loads(body)) == (200, {"ok": True})  # an empty window: lifted
    assert server.stats()["paths"]["/down"]["outage"]["before"] == 1  # counts restart
    server.configure({"routes": [{"path": "/down", "outage": {"end": 1, "delay": 2}}]})
    task = asyncio.ensure_future(fetch(session, server.url("/down")))
    await server.wait_for_requests(4, path="/down")
    assert not task.done()  # the outage reply waits its delay on the server's clock
    await clock.advance(2.0)
    assert (await task)[0] == 503


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"start": -1}, ValueError, "start"),
        ({"start": 2, "end": 1}, ValueError, "end must be >= start"),
        ({"end": "soon"}, TypeError, "end"),
        ({"status": 99}, ValueError, "status"),
        ({"status": True}, ValueError, "status"),
        ({"delay": -1}, ValueError, "delay"),
    ],
)
def test_outage_window_is_validated(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        MockServer().outage("/x", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"rate": 0}, ValueError, "rate"),
        ({"rate": "10"}, TypeError, "rate"),
        ({"rate": 1, "per": 0}, ValueError, "per"),
        ({"rate": 1, "burst": 0.5}, ValueError, "burst"),
        ({"rate": 1, "retry_after": -1}, ValueError, "retry_after"),
    ],
)
async def test_rate_limit_is_validated(
    mock_server: MockServer, session: aiohttp.ClientSession, kwargs: dict[str, Any],
    error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        mock_server.rate_limited("/x", **kwargs)
    with pytest.raises(error, match=name):
        mock_server.set_rate("/y", **kwargs)
    # A rejected configuration leaves no half-made route behind.
    assert (await fetch(session, mock_server.url("/x")))[0] == 404
    assert (await fetch(session, mock_server.url("/y")))[0] == 404


# -- cacheable --------------------------------------------------------------------------------


async def test_cacheable_answers_if_none_match_with_304(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    resource = mock_server.cacheable("/c", "v1 body", etag="v1", cache_control="max-age=60",
                                     extra_headers={"X-Extra": "1"})
    url = mock_server.url("/c")
    status, headers, body = await fetch(session, url)
    assert (status, body, headers["ETag"]) == (200, b"v1 body", '"v1"')
    assert headers["Cache-Control"] == "max-age=60" and headers["X-Extra"] == "1"
    status, headers, body = await fetch(session, url, headers={"If-None-Match": '"v1"'})
    assert (status, body) == (304, b"")
    assert headers["ETag"] == '"v1"' and headers["Cache-Control"] == "max-age=60"
    for inm in ('W/"v1"', '"x", "v1"', "*"):
        assert (await fetch(session, url, headers={"If-None-Match": inm}))[0] == 304
    assert (await fetch(session, url, headers={"If-None-Match": '"v0"'}))[0] == 200
    assert (await fetch(session, url, "POST", headers={"If-None-Match": '"v1"'}))[0] == 200

    resource.update(body=b"v2 body", etag='"v2"')
    status, headers, body = await fetch(session, url, headers={"If-None-Match": '"v1"'})
    assert (status, body, headers["ETag"]) == (200, b"v2 body", '"v2"')
    assert resource.version == 1
    assert mock_server.stats()["paths"]["/c"]["statuses"] == {"200": 4, "304": 4}


async def test_cacheable_if_modified_since(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    modified = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    mock_server.cacheable("/lm", b"x", last_modified=modified,
                          expires=timedelta(seconds=60))
    url = mock_server.url("/lm")
    status, headers, _ = await fetch(session, url)
    assert status == 200
    assert headers["Last-Modified"] == "Tue, 02 Jan 2024 03:04:05 GMT"
    expires = parsedate_to_datetime(headers["Expires"]).timestamp()
    assert abs(expires - (time.time() + 60)) < 5
    same = format_datetime(modified, usegmt=True)
    later = format_datetime(modified + timedelta(seconds=1), usegmt=True)
    earlier = format_datetime(modified - timedelta(seconds=1), usegmt=True)
    assert (await fetch(session, url, headers={"If-Modified-Since": same}))[0] == 304
    assert (await fetch(session, url, headers={"If-Modified-Since": later}))[0] == 304
    assert (await fetch(session, url, headers={"If-Modified-Since": earlier}))[0] == 200
    assert (await fetch(session, url, headers={"If-Modified-Since": "garbage"}))[0] == 200


async def test_cacheable_vary_gives_each_variant_its_body_and_etag(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.cacheable("/v", b"doc", etag="v1", vary="Accept")
    url = mock_server.url("/v")
    _, h_json, b_json = await fetch(session, url, headers={"Accept": "application/json"})
    _, h_html, b_html = await fetch(session, url, headers={"Accept": "text/html"})
    assert b_json == b"doc\naccept: application/json"
    assert b_html == b"doc\naccept: text/html"
    assert h_json["Vary"] == "Accept"
    assert h_json["ETag"] != h_html["ETag"]
    assert h_json["ETag"].startswith('"v1-')
    json_inm = {"Accept": "application/json", "If-None-Match": h_json["ETag"]}
    assert (await fetch(session, url, headers=json_inm))[0] == 304
    wrong = {"Accept": "text/html", "If-None-Match": h_json["ETag"]}
    assert (await fetch(session, url, headers=wrong))[0] == 200


async def test_cacheable_is_validated(mock_server: MockServer) -> None:
    with pytest.raises(TypeError, match="body"):
        mock_server.cacheable("/c", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="last_modified"):
        mock_server.cacheable("/c", b"", last_modified="yesterday")
    with pytest.raises(TypeError, match="expires"):
        mock_server.cacheable("/c", b"", expires=[1])  # type: ignore[arg-type]
    resource = mock_server.cacheable("/c", b"")
    with pytest.raises(TypeError, match="unknown"):
        resource.update(etagg="x")


# -- random faults ------------------------------------------------------------------------------


async def _fault_profile(server: MockServer, session: aiohttp.ClientSession, n: int) -> list[str]:
    outcomes = []
    for _ in range(n):
        try:
            status, _, _ = await fetch(session, server.url("/chaos"), "POST")
            outcomes.append(str(status))
        except aiohttp.ClientPayloadError:
            outcomes.append("truncated")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            outcomes.append("reset")
    return outcomes


async def test_random_faults_are_seeded_and_follow_the_ratios(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    profiles = []
    for _ in range(2):
        server = await mock_server_factory(clock=FakeClock(autojump=True))
        server.random_faults("/chaos", error_ratio=0.3, error_status=502, reset_ratio=0.1,
                             truncate_ratio=0.1, seed=42)
        profiles.append(await _fault_profile(server, session, 200))
        assert server.stats()["paths"]["/chaos"]["count"] == 200
    assert profiles[0] == profiles[1]
    counts = {k: profiles[0].count(k) for k in ("200", "502", "reset", "truncated")}
    assert sum(counts.values()) == 200
    assert 80 <= counts["200"] <= 120
    assert 40 <= counts["502"] <= 80
    assert 5 <= counts["reset"] <= 40 and 5 <= counts["truncated"] <= 40


async def test_random_faults_latency_uses_the_clock(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(autojump=True)
    server = await mock_server_factory(clock=clock)
    server.random_faults("/lat", latency=(0.5, 1.5), seed=1)
    assert await statuses(session, server.url("/lat"), 20) == [200] * 20
    assert len(clock.sleeps) == 20
    assert all(0.5 <= s <= 1.5 for s in clock.sleeps)
    assert len(set(clock.sleeps)) > 1
    server.random_faults("/fixed", latency=0.25)
    await fetch(session, server.url("/fixed"))
    assert clock.sleeps[-1] == 0.25


async def test_random_faults_slow_bodies_wait_on_the_clock(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await mock_server_factory(clock=clock)
    server.random_faults("/slow", slow_ratio=1.0, slow_body=2.0, success=Reply(body="abcde"))
    async with session.get(server.url("/slow")) as resp:
        assert resp.status == 200 and resp.headers["Content-Length"] == "5"
        assert await asyncio.wait_for(resp.content.readexactly(3), 2.0) == b"abc"
        assert clock.pending() == 1, "the second half must wait for the clock"
        await clock.advance(2.0)
        assert await asyncio.wait_for(resp.read(), 2.0) == b"de"
    auto_clock = FakeClock(autojump=True)
    auto = await mock_server_factory(clock=auto_clock)
    auto.random_faults("/mix", slow_ratio=0.5, seed=3, success=Reply(body="ok"))
    bodies = [(await fetch(session, auto.url("/mix")))[2] for _ in range(40)]
    assert bodies == [b"ok"] * 40
    assert 8 <= len(auto_clock.sleeps) <= 32  # about half the bodies waited


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"slow_ratio": 0.5, "error_ratio": 0.6}, ValueError, "slow_ratio must be <= 1"),
        ({"slow_ratio": 0.1, "success": Reply(body="x")}, ValueError, "2 bytes"),
        ({"slow_ratio": 0.1, "slow_body": -1}, ValueError, "slow_body"),
        ({"error_ratio": 1.5}, ValueError, "error_ratio"),
        ({"reset_ratio": "0.1"}, TypeError, "reset_ratio"),
        ({"error_ratio": 0.6, "reset_ratio": 0.6}, ValueError, "<= 1"),
        ({"latency": (2.0, 1.0)}, ValueError, "latency"),
        ({"latency": -1}, ValueError, "latency"),
        ({"truncate_ratio": 0.1, "success": 204}, ValueError, "truncate_ratio"),
    ],
)
async def test_random_faults_are_validated(
    mock_server: MockServer, kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        mock_server.random_faults("/x", **kwargs)


# -- recording ------------------------------------------------------------------------------------


async def test_recording(mock_server_factory: Factory, session: aiohttp.ClientSession) -> None:
    clock = FakeClock(start=100.0)
    server = await mock_server_factory(clock=clock)
    await fetch(session, server.url("/a?x=1&x=2"), headers={"X-Id": "1"})
    await clock.advance(5.0)
    await fetch(session, server.url("/b"), "PUT", data=b"\x00\x01")
    await fetch(session, server.url("/a"), "DELETE")
    requests = server.requests
    assert [(r.method, r.path) for r in requests] == [("GET", "/a"), ("PUT", "/b"),
                                                      ("DELETE", "/a")]
    first = requests[0]
    assert isinstance(first, RecordedRequest)
    assert first.query.getall("x") == ["1", "2"]
    assert str(first.url) == "/a?x=1&x=2"
    assert first.headers["x-id"] == "1"
    assert first.body == b"" and first.time == 100.0
    assert requests[1].body == b"\x00\x01" and requests[1].time == 105.0
    # One keep-alive connection: the same client port every time.
    assert first.peer_port is not None and {r.peer_port for r in requests} == {first.peer_port}
    assert [r.method for r in server.requests_for("/a")] == ["GET", "DELETE"]
    assert [r.method for r in server.requests_for("/a", method="delete")] == ["DELETE"]
    assert (server.count(), server.count("/a"), server.count("/zzz")) == (3, 2, 0)
    server.requests.clear()  # a copy: the server's record is untouched
    assert server.count() == 3 and len(server.requests) == 3
    server.clear()
    assert (server.requests, server.count(), server.stats()["paths"]) == ([], 0, {})
    await fetch(session, server.url("/anything"), "POST", json={"a": 1})
    assert server.requests[0].json() == {"a": 1}
    assert server.requests[0].text() == '{"a": 1}'


async def test_recording_can_be_off(
    mock_server_factory: Factory, session: aiohttp.ClientSession
) -> None:
    server = await mock_server_factory(record=False)
    await fetch(session, server.url("/ok"))
    await fetch(session, server.url("/nope"))
    assert server.requests == []
    stats = server.stats()
    assert stats["total"] == 2
    assert stats["paths"] == {"/ok": {"count": 1, "statuses": {"200": 1}},
                              "/nope": {"count": 1, "statuses": {"404": 1}}}
    assert stats["cpu_time"] > 0


# -- configuration and control API -------------------------------------------------------------


CONFIG: dict[str, Any] = {
    "routes": [
        {"path": "/flaky", "method": "GET", "script": [503, {"status": 200, "json": {"id": 1}}]},
        {"path": "/retry", "fail_then_succeed": {"failures": 1, "status": 502,
                                                 "success": {"status": 201}}},
        {"path": "/limited", "rate_limited": {"rate": 1, "per": 60}},
        {"path": "/chaos", "random_faults": {"error_ratio": 1.0, "error_status": 500,
                                             "latency": [0, 0]}},
        {"path": "/cache", "cacheable": {"body": "c", "etag": "e1"}},
        {"path": "/dripped", "script": [{"body": "abcd", "drip": [2, 0]}]},
    ]
}


async def _check_config(session: aiohttp.ClientSession, url: Callable[[str], Any]) -> None:
    assert await statuses(session, url("/flaky"), 2) == [503, 200]
    assert (await fetch(session, url("/flaky"), "POST"))[0] == 405
    assert await statuses(session, url("/retry"), 2) == [502, 201]
    assert await statuses(session, url("/limited"), 2) == [200, 429]
    assert await statuses(session, url("/chaos"), 1) == [500]
    assert (await fetch(session, url("/cache"), headers={"If-None-Match": '"e1"'}))[0] == 304
    assert (await fetch(session, url("/dripped")))[2] == b"abcd"


async def test_configure_from_a_document(
    mock_server: MockServer, session: aiohttp.ClientSession
) -> None:
    mock_server.configure(CONFIG)
    await _check_config(session, mock_server.url)
    mock_server.configure({"routes": [{"path": "/limited", "set_rate": {"rate": None}}]})
    assert await statuses(session, mock_server.url("/limited"), 2) == [200, 200]
    mock_server.configure({"reset": True, "record": False})
    assert mock_server.count() == 0 and not mock_server.record
    assert (await fetch(session, mock_server.url("/flaky")))[0] == 404


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"routez": []}, ValueError, "routez"),
        ({"routes": {}}, TypeError, "routes"),
        ({"routes": [{"path": "/x", "scrip": [200]}]}, ValueError, "scrip"),
        ({"routes": [{"path": "/x"}]}, ValueError, "one or more"),
        ({"routes": [{"script": [200]}]}, TypeError, "path"),
        ({"routes": [{"path": "/x", "script": [{"status": 200, "colour": 1}]}]}, TypeError,
         "colour"),
        ({"routes": [{"path": "/x", "rate_limited": {"rate": -1}}]}, ValueError, "rate"),
        ({"routes": [{"path": "/x", "set_rate": {}}]}, TypeError, "set_rate"),
        ({"routes": [{"path": "/x", "cacheable": {}}]}, TypeError, "body"),
        ({"routes": [{"path": "/x", "outage": {"start": 1, "end": 0}}]}, ValueError, "end"),
        ({"routes": [{"path": "/x", "outage": 5}]}, TypeError, "outage"),
        ({"record": "yes"}, TypeError, "record"),
    ],
)
def test_configure_rejects_bad_documents(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        MockServer().configure(config)


async def test_control_endpoints(mock_server: MockServer, session: aiohttp.ClientSession) -> None:
    control = mock_server.url("/__control/configure")
    status, _, body = await fetch(session, control, "POST", json=CONFIG)
    assert (status, json.loads(body)) == (200, {"ok": True})
    await _check_config(session, mock_server.url)
    status, _, body = await fetch(session, control, "POST", json={"routes": [{"path": 1}]})
    assert status == 400 and "path" in json.loads(body)["error"]
    status, _, body = await fetch(session, control, "POST", data=b"{not json")
    assert status == 400
    _, _, body = await fetch(session, mock_server.url("/__control/stats"))
    stats = json.loads(body)
    assert stats["paths"]["/flaky"]["statuses"] == {"503": 1, "200": 1, "405": 1}
    assert stats["total"] == 10  # control requests are not counted
    assert all(not r.path.startswith("/__control/") for r in mock_server.requests)
    assert (await fetch(session, mock_server.url("/__control/clear"), "POST"))[0] == 200
    assert mock_server.count() == 0 and (await fetch(session, mock_server.url("/flaky")))[0] == 200
    assert (await fetch(session, mock_server.url("/__control/reset"), "POST"))[0] == 200
    assert (await fetch(session, mock_server.url("/flaky")))[0] == 404
    assert (await fetch(session, mock_server.url("/__control/nope"), "POST"))[0] == 404
    assert (await fetch(session, mock_server.url("/__control/reset")))[0] == 405


# -- process mode -------------------------------------------------------------------------------


async def test_server_process(session: aiohttp.ClientSession) -> None:
    async with MockServerProcess(config={"routes": CONFIG["routes"][:1]}) as proc:
        assert proc.pid > 0
        assert await statuses(session, proc.url("/flaky"), 2) == [503, 200]
        await proc.configure({"routes": [{"path": "/limited",
                                          "rate_limited": {"rate": 1, "per": 60}}]})
        assert await statuses(session, proc.url("/limited"), 2) == [200, 429]
        with pytest.raises(ValueError, match="rate"):
            await proc.configure({"routes": [{"path": "/x", "rate_limited": {"rate": 0}}]})
        await proc.configure({"routes": [{"path": "/flaky", "outage": {"end": 60}}]})
        assert await statuses(session, proc.url("/flaky"), 1) == [503]  # on its own clock
        stats = await proc.stats()
        assert stats["paths"]["/flaky"]["outage"] == {
            "start": 0.0, "end": 60.0, "before": 0, "during": 1, "after": 0
        }
        await proc.configure({"routes": [{"path": "/flaky", "outage": {"end": 0}}]})
        stats = await proc.stats()
        assert stats["total"] == 5 and stats["recording"] is False
        assert stats["paths"]["/limited"]["statuses"] == {"200": 1, "429": 1}
        assert stats["cpu_time"] > 0
        await proc.reset()
        assert (await proc.stats())["total"] == 0
        assert (await fetch(session, proc.url("/flaky")))[0] == 404
    assert proc.returncode == 0  # SIGTERM shuts it down cleanly
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(session, proc.url("/ok"))


async def test_server_command_line_with_a_config_file(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    config = tmp_path / "mock.json"
    config.write_text(json.dumps(CONFIG))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-W", "error", "-m", "resilient_http.testing.server",
        "--port", "0", "--config", str(config),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = (await asyncio.wait_for(child.stdout.readline(), 10.0)).decode()
        assert line.startswith("LISTENING http://127.0.0.1:")
        origin = line.split()[1]
        await _check_config(session, lambda path: origin + path)
    finally:
        child.terminate()
        assert await asyncio.wait_for(child.wait(), 10.0) == 0
