"""The ClientResponse shim: a response built from stored bytes behaves like a live one.

Runs on every aiohttp we support (the constructor changed in 3.14); it needs no MockServer,
only aiohttp's own web server, so it runs in any venv:

    python3 -m venv /tmp/v312 && /tmp/v312/bin/pip install -e '.[dev]' 'aiohttp==3.12.*'
    /tmp/v312/bin/pytest -p no:cacheprovider tests/test_response.py tests/test_cache.py

(``make test`` already does this for the whole suite in its ``compat`` step.)
"""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from resilient_http._response import NEEDS_STREAM_WRITER, body_if_read, build_response

BODY = json.dumps({"hello": "wörld", "n": [1, 2, 3]}).encode()

Built = Callable[..., Awaitable[aiohttp.ClientResponse]]


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="live")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


def answering(
    status: int = 200,
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
    reason: str = "OK",
) -> Any:
    """A middleware that answers every request with a built response (never calls the server)."""
    fields: CIMultiDict[str] = CIMultiDict(
        headers if headers is not None else {"Content-Type": "application/json; charset=utf-8"}
    )
    proxy = CIMultiDictProxy(fields)
    raw = tuple((k.encode(), v.encode()) for k, v in fields.items())

    async def middleware(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        return build_response(
            request.method, request.url, status=status, reason=reason, headers=proxy,
            raw_headers=raw, body=body, request_info=request.request_info, loop=request.loop,
            session=getattr(request, "_session", None),
        )

    return middleware


def test_the_constructor_variant_matches_the_installed_aiohttp() -> None:
    major, minor = (int(p) for p in aiohttp.__version__.split(".")[:2])
    assert ((major, minor) >= (3, 14)) == NEEDS_STREAM_WRITER


async def test_read_json_text_headers_status_url(url: str) -> None:
    async with (
        aiohttp.ClientSession(middlewares=(answering(),)) as session,
        session.get(url + "x?q=1") as resp,
    ):
        assert type(resp) is aiohttp.ClientResponse
        assert resp.status == 200 and resp.ok and resp.reason == "OK"
        assert str(resp.url) == url + "x?q=1"
        assert resp.method == "GET"
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        assert resp.raw_headers[0][0] == b"Content-Type"
        assert resp.content_type == "application/json"
        assert resp.charset == "utf-8"
        assert await resp.read() == BODY
        assert await resp.json() == {"hello": "wörld", "n": [1, 2, 3]}
        assert await resp.text() == BODY.decode()
        assert resp.request_info.url == resp.url
        assert resp.history == ()
        assert resp.closed
        assert "200 OK" in repr(resp)
        assert body_if_read(resp) == BODY


async def test_content_iteration_and_partial_reads(url: str) -> None:
    body = b"line one\nline two\nline three"
    async with aiohttp.ClientSession(middlewares=(answering(body=body),)) as session:
        async with session.get(url) as resp:
            lines = [line async for line in resp.content]
            assert lines == [b"line one\n", b"line two\n", b"line three"]
        async with session.get(url) as resp:
            chunks = [c async for c in resp.content.iter_chunked(5)]
            assert b"".join(chunks) == body
        async with session.get(url) as resp:
            assert await resp.content.read(4) == b"line"
            assert await resp.content.read() == body[4:]
            assert resp.content.at_eof()


async def test_empty_body(url: str) -> None:
    async with (
        aiohttp.ClientSession(middlewares=(answering(204, b"", {}),)) as session,
        session.get(url) as resp,
    ):
        assert resp.status == 204
        assert await resp.read() == b""
        assert [c async for c in resp.content] == []


async def test_raise_for_status(url: str) -> None:
    mw = answering(404, b"nope", {"Content-Type": "text/plain"}, reason="Not Found")
    async with aiohttp.ClientSession(middlewares=(mw,)) as session:
        async with session.get(url) as resp:
            with pytest.raises(aiohttp.ClientResponseError) as info:
                resp.raise_for_status()
            assert info.value.status == 404
            assert info.value.message == "Not Found"
        resp = await session.get(url)
        with pytest.raises(aiohttp.ClientResponseError):
            resp.raise_for_status()  # outside a context it releases the response itself
    async with aiohttp.ClientSession(middlewares=(mw,), raise_for_status=True) as session:
        with pytest.raises(aiohttp.ClientResponseError):
            await session.get(url)


async def test_await_without_context_then_release(url: str) -> None:
    async with aiohttp.ClientSession(middlewares=(answering(),)) as session:
        resp = await session.get(url)
        assert await resp.json() == {"hello": "wörld", "n": [1, 2, 3]}
        resp.release()
        resp.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await resp.content.read()


async def test_no_warnings_and_nothing_left_open(url: str) -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with aiohttp.ClientSession(middlewares=(answering(),)) as session:
                for _ in range(20):
                    resp = await session.get(url)
                    await resp.read()
                    del resp  # dropped without release
                async with session.get(url):
                    pass  # never read
                assert session.connector is not None
                await asyncio.sleep(0)
            gc.collect()
            await asyncio.sleep(0)
        assert [str(w.message) for w in caught] == []
    finally:
        loop.set_debug(False)


async def test_redirect_from_a_built_response_is_followed(url: str) -> None:
    calls: list[str] = []

    async def redirect_once(request: aiohttp.ClientRequest, handler: Any) -> Any:
        calls.append(request.url.path)
        if request.url.path == "/old":
            fields = CIMultiDict({"Location": "/new"})
            return build_response(
                request.method, request.url, status=301, reason="Moved Permanently",
                headers=CIMultiDictProxy(fields), raw_headers=((b"Location", b"/new"),),
                body=b"", request_info=request.request_info, loop=request.loop,
                session=getattr(request, "_session", None),
            )
        return await handler(request)

    async with (
        aiohttp.ClientSession(middlewares=(redirect_once,)) as session,
        session.get(url + "old") as resp,
    ):
        assert await resp.text() == "live"
        assert [r.status for r in resp.history] == [301]
    assert calls == ["/old", "/new"]
