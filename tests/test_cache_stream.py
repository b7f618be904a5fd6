"""A cache miss is read by the caller, not by the cache: the body streams through a tee into
the store (real loopback servers: MockServer, and a raw socket server for bodies that end
with the connection)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _cachetest import get

import resilient_http as rh
from resilient_http.testing import FakeClock, MockServer, Reply

pytest_plugins = ("_cachefixtures",)  # the fixtures: clock, server, make

BODY = bytes(range(256)) * 400  # 100 KiB


async def chunked_read(resp: aiohttp.ClientResponse) -> bytes:
    return b"".join([chunk async for chunk in resp.content.iter_chunked(4096)])


async def twice(session: aiohttp.ClientSession, url: Any) -> None:
    """GET ``url`` twice, reading with ``iter_chunked``: BODY both times."""
    for _ in range(2):
        async with session.get(url) as resp:
            assert await chunked_read(resp) == BODY


@pytest.mark.parametrize("reader", ["iter_chunked", "iter_any", "readline", "read", "text"])
async def test_a_miss_streams_to_the_caller_and_the_next_request_is_a_hit(
    server: MockServer, make: Any, reader: str
) -> None:
    body = b"line one\nline two\n" * 3000
    server.script("/r", Reply(200, body=body, headers={"Cache-Control": "max-age=60"}))
    c = make()
    async with c.session.get(server.url("/r")) as resp:
        if reader == "iter_chunked":
            got = await chunked_read(resp)
        elif reader == "iter_any":
            got = b"".join([chunk async for chunk in resp.content.iter_any()])
        elif reader == "readline":
            got = b"".join([line async for line in resp.content])
        elif reader == "read":
            got = await resp.content.read()
        else:
            got = (await resp.text()).encode()
    assert got == body
    async with c.session.get(server.url("/r")) as hit:
        assert await chunked_read(hit) == body
    assert server.count("/r") == 1
    assert c.names() == ["cache.miss", "cache.stored", "cache.hit"]


async def test_an_event_stream_arrives_as_sent_and_is_not_stored(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    events = b"".join(b"data: %d\n\n" % n for n in range(4))
    server.script("/events", Reply(200, body=events, drip=(9, 1.0), headers={
        "Content-Type": "text/event-stream", "Cache-Control": "max-age=60"}))
    c = make()

    async def first_event() -> tuple[aiohttp.ClientResponse, bytes]:
        resp = await c.session.get(server.url("/events"))
        return resp, await resp.content.readuntil(b"\n\n")

    # The first event comes before the server's clock moves: nothing waits for the rest.
    resp, first = await asyncio.wait_for(first_event(), 2.0)
    assert first == b"data: 0\n\n"
    rest = asyncio.create_task(resp.content.read())
    for _ in range(3):
        await clock.advance(1.0)
    assert first + await rest == events
    resp.release()
    async with c.session.get(server.url("/events")) as again:
        assert await again.content.readuntil(b"\n\n") == first
    assert server.count("/events") == 2
    assert [e.detail["reason"] for e in c.events if e.name == "cache.not_stored"] == [
        "event stream", "event stream"]


async def test_store_streams_stores_an_event_stream(server: MockServer, make: Any) -> None:
    server.script("/events", Reply(200, body=b"data: 1\n\n", headers={
        "Content-Type": "text/event-stream", "Cache-Control": "max-age=60"}))
    c = make(store_streams=True)
    for _ in range(2):
        assert (await get(c.session, server.url("/events")))[1] == b"data: 1\n\n"
    assert server.count("/events") == 1


async def test_a_body_over_max_bytes_is_handed_through_whole_and_not_stored(
    server: MockServer, make: Any
) -> None:
    server.script("/big", Reply(200, body=BODY, headers={"Cache-Control": "max-age=60"}))
    c = make(max_bytes=10_000)
    await twice(c.session, server.url("/big"))
    assert server.count("/big") == 2
    assert [e.detail["reason"] for e in c.events if e.name == "cache.not_stored"] == [
        "too large", "too large"]


async def test_a_caller_that_stops_early_stores_nothing(server: MockServer, make: Any) -> None:
    server.script("/r", Reply(200, body=BODY, headers={"Cache-Control": "max-age=60"}))
    c = make()
    async with c.session.get(server.url("/r")) as resp:
        assert len(await resp.content.read(1000)) == 1000
    assert (await get(c.session, server.url("/r")))[1] == BODY  # upstream again, stored now
    assert (await get(c.session, server.url("/r")))[1] == BODY
    assert server.count("/r") == 2
    assert c.names().count("cache.stored") == 1


async def test_waiters_go_on_their_own_when_the_leaders_caller_drops_the_body(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=BODY, delay=1.0, headers={"Cache-Control": "max-age=60"}))
    c = make()
    leader = await asyncio.wait_for(_started(c, server, clock), 2.0)
    waiter = asyncio.create_task(get(c.session, server.url("/r")))
    await asyncio.sleep(0)
    del leader  # dropped unread, never released
    gc.collect()
    await server.wait_for_requests(2, path="/r")
    await clock.advance(1.0)
    assert (await waiter)[1] == BODY


async def _started(c: Any, server: MockServer, clock: FakeClock) -> aiohttp.ClientResponse:
    task = asyncio.create_task(c.session.get(server.url("/r")))
    await server.wait_for_requests(1, path="/r")
    await clock.advance(1.0)
    return await task  # type: ignore[no-any-return]


async def test_a_body_read_by_a_layer_inside_is_stored(server: MockServer, make: Any) -> None:
    server.script("/r", Reply(200, body=BODY, headers={"Cache-Control": "max-age=60"}))
    c = make(inner=(rh.Timeout(30),))
    assert (await get(c.session, server.url("/r")))[1] == BODY
    assert (await get(c.session, server.url("/r")))[1] == BODY
    assert server.count("/r") == 1


# ----------------------------------------------------------------- chunked and read-until-close


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A socket server: ``/close`` ends its body by closing the connection, ``/chunked``
    sends BODY in chunks. Counts the requests in the list it yields."""
    seen: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(1)
        common = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
        if b" /close " in head.split(b"\r\n")[0]:
            writer.write(common + b"Connection: close\r\n\r\n" + BODY)
        else:
            writer.write(common + b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(BODY), 8192):
                piece = BODY[i : i + 8192]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    srv.close()
    await srv.wait_closed()


async def test_a_body_that_ends_with_the_connection_is_not_stored_unless_asked(
    raw_server: tuple[str, list[int]], make: Any
) -> None:
    base, seen = raw_server
    c = make()
    await twice(c.session, base + "/close")
    assert len(seen) == 2
    assert "no known end" in [e.detail.get("reason") for e in c.events]
    asked = make(store_streams=True)
    await twice(asked.session, base + "/close")
    assert len(seen) == 3


async def test_a_chunked_body_is_stored_and_one_past_max_bytes_is_handed_through(
    raw_server: tuple[str, list[int]], make: Any
) -> None:
    base, seen = raw_server
    c = make()
    await twice(c.session, base + "/chunked")
    assert len(seen) == 1
    small = make(max_bytes=10_000)
    await twice(small.session, base + "/chunked")
    assert len(seen) == 3
    assert "body not read whole" in [e.detail.get("reason") for e in small.events]


async def test_head_is_stored_whatever_content_length_it_announces(
    server: MockServer, make: Any
) -> None:
    server.script("/r", Reply(200, body=BODY, headers={"Cache-Control": "max-age=60"}))
    c = make(max_bytes=10_000)
    for _ in range(2):
        async with c.session.head(server.url("/r")) as resp:
            assert resp.headers["Content-Length"] == str(len(BODY))
    assert server.count("/r") == 1
