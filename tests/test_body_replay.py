"""A body read by a layer (Timeout, Retry, standard() read it inside the call) stays readable
through every aiohttp reading API: the caller sees what aiohttp alone would have handed over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import resilient_http as rh

# 512 KiB of JSON, one array item per line: every API (readline and json included) applies.
_LINE = b'"' + b"x" * 1020 + b'",\n'  # 1 KiB per line
BODY = b"[\n" + _LINE * 511 + b'"' + b"y" * 1017 + b'"\n]\n'
assert len(BODY) == 512 * 1024


async def _lines(resp: aiohttp.ClientResponse) -> bytes:
    out = b""
    while line := await resp.content.readline():
        out += line
    return out


async def _readany(resp: aiohttp.ClientResponse) -> bytes:
    out = b""
    while chunk := await resp.content.readany():
        out += chunk
    return out


async def _iter_chunked(resp: aiohttp.ClientResponse) -> bytes:
    return b"".join([c async for c in resp.content.iter_chunked(4096)])


async def _iter_any(resp: aiohttp.ClientResponse) -> bytes:
    return b"".join([c async for c in resp.content.iter_any()])


async def _async_for(resp: aiohttp.ClientResponse) -> bytes:
    return b"".join([line async for line in resp.content])


async def _text(resp: aiohttp.ClientResponse) -> bytes:
    return (await resp.text()).encode()


async def _json(resp: aiohttp.ClientResponse) -> bytes:
    return BODY if await resp.json() == json.loads(BODY) else b"json differs"


async def _content_read(resp: aiohttp.ClientResponse) -> bytes:
    return await resp.content.read()


async def _read(resp: aiohttp.ClientResponse) -> bytes:
    return await resp.read()


READERS: dict[str, Callable[[aiohttp.ClientResponse], Awaitable[bytes]]] = {
    "read": _read,
    "text": _text,
    "json": _json,
    "content.read": _content_read,
    "content.iter_chunked": _iter_chunked,
    "content.iter_any": _iter_any,
    "content.readline": _lines,
    "content.readany": _readany,
    "async for line in content": _async_for,
}

LAYERS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "Timeout": lambda: (rh.Timeout(10),),
    "Retry": lambda: (rh.Retry(),),
    "standard": lambda: rh.standard(),
}


async def _send(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    if request.path == "/chunked":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = len(BODY)
    await resp.prepare(request)
    for at in range(0, len(BODY), 64 * 1024):  # in pieces, after the headers
        await asyncio.sleep(0.001)
        await resp.write(BODY[at : at + 64 * 1024])
    await resp.write_eof()
    return resp


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/chunked", _send)
    app.router.add_get("/length", _send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("framing", ["chunked", "length"])
@pytest.mark.parametrize("layers", list(LAYERS))
@pytest.mark.parametrize("reader", list(READERS))
async def test_a_body_read_by_a_layer_reads_again_through_every_api(
    server: str, framing: str, layers: str, reader: str
) -> None:
    stack = LAYERS[layers]()
    assert any(layer.reads_body for layer in rh.Stack(*stack).layers)
    async with (
        aiohttp.ClientSession(middlewares=stack) as session,
        session.get(f"{server}/{framing}") as resp,
    ):
        assert resp.status == 200
        got = await READERS[reader](resp)
        assert len(got) == len(BODY)
        assert got == BODY
        assert await resp.read() == BODY  # and read() still has it afterwards


async def test_a_replayed_body_reads_through_the_decorator_too(server: str) -> None:
    @rh.resilient(rh.Timeout(10), rh.Retry())
    async def fetch(session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
        return await session.get(f"{server}/chunked")

    async with aiohttp.ClientSession() as session:
        resp = await fetch(session)
        try:
            assert await _iter_chunked(resp) == BODY
        finally:
            resp.release()


async def test_the_general_engine_replays_the_body_too(server: str) -> None:
    from _layers import Again

    # Again(1) answers REENTER once: the second attempt runs through the general engine.
    async with (
        aiohttp.ClientSession(middlewares=(rh.Stack(rh.Timeout(10), Again(1)),)) as session,
        session.get(f"{server}/length") as resp,
    ):
        assert await _content_read(resp) == BODY
