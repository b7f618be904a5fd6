"""A fake paginated API on loopback, one route per pagination style, answering from the
request's own parameters (so the tests check what the client really sent)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

ITEMS = [{"id": f"it_{i:03d}", "n": i} for i in range(25)]


@dataclass
class FakeApi:
    base: str
    app: web.Application
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def queries(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.log if p == path]


def _int(request: web.Request, name: str, default: int) -> int:
    return int(request.query.get(name, default))


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _untoken(token: str) -> int:
    return int(json.loads(base64.urlsafe_b64decode(token))["o"])


async def github(request: web.Request) -> web.Response:
    page, per_page = _int(request, "page", 1), _int(request, "per_page", 30)
    start = (page - 1) * per_page
    chunk = ITEMS[start : start + per_page]
    last = max(1, -(-len(ITEMS) // per_page))
    base = request.url.with_query({})
    links = []
    if page < last:
        links.append(f'<{base.with_query(page=page + 1, per_page=per_page)}>; rel="next"')
    links.append(f'<{base.with_query(page=last, per_page=per_page)}>; rel="last"')
    return web.json_response(chunk, headers={"Link": ", ".join(links)})


def _after(request: web.Request, param: str) -> tuple[list[dict[str, Any]], bool]:
    limit = _int(request, "limit", 10)
    after = request.query.get(param)
    start = 0 if after is None else next(i for i, it in enumerate(ITEMS) if it["id"] == after) + 1
    chunk = ITEMS[start : start + limit]
    return chunk, start + limit < len(ITEMS)


async def stripe(request: web.Request) -> web.Response:
    chunk, more = _after(request, "starting_after")
    return web.json_response(
        {"object": "list", "url": "/v1/customers", "has_more": more, "data": chunk}
    )


async def openai(request: web.Request) -> web.Response:
    chunk, more = _after(request, "after")
    return web.json_response(
        {
            "object": "list",
            "data": chunk,
            "first_id": chunk[0]["id"] if chunk else None,
            "last_id": chunk[-1]["id"] if chunk else None,
            "has_more": more,
        }
    )


async def google(request: web.Request) -> web.Response:
    size = _int(request, "pageSize", 10)
    token = request.query.get("pageToken")
    start = 0 if token is None else _untoken(token)
    # Like real Google APIs, page 2 is short (a filter dropped items): not the end.
    served = size if start == 0 else size // 2 if start == size else size
    chunk = ITEMS[start : start + served]
    body: dict[str, Any] = {"kind": "drive#fileList", "files": chunk}
    if start + served < len(ITEMS):
        body["nextPageToken"] = _token(start + served)
    return web.json_response(body)


async def jsonapi(request: web.Request) -> web.Response:
    size = _int(request, "page[size]", 10)
    number = _int(request, "page[number]", 1)
    start = (number - 1) * size
    chunk = [
        {"type": "articles", "id": it["id"], "attributes": it}
        for it in ITEMS[start : start + size]
    ]
    links: dict[str, Any] = {"self": str(request.rel_url)}
    if start + size < len(ITEMS):
        # relative link, as JSON:API servers often send
        links["next"] = f"/jsonapi/articles?page%5Bnumber%5D={number + 1}&page%5Bsize%5D={size}"
    else:
        links["next"] = None
    return web.json_response(
        {"data": chunk, "included": [{"type": "people", "id": "9"}], "links": links},
        content_type="application/vnd.api+json",
    )


async def offset(request: web.Request) -> web.Response:
    off = _int(request, "offset", 0)
    limit = min(_int(request, "limit", 10), 7)  # the server caps the limit at 7
    return web.json_response({"results": ITEMS[off : off + limit], "total": len(ITEMS)})


async def pages(request: web.Request) -> web.Response:
    page, per_page = _int(request, "page", 1), _int(request, "per_page", 10)
    start = (page - 1) * per_page
    return web.json_response(ITEMS[start : start + per_page])


@asynccontextmanager
async def fake_api() -> AsyncIterator[FakeApi]:
    app = web.Application()
    api = FakeApi("", app)

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        api.log.append((request.path, dict(request.query)))
        return await handler(request)

    app.middlewares.append(record)
    app.router.add_get("/gh/items", github)
    app.router.add_get("/stripe/v1/customers", stripe)
    app.router.add_get("/openai/v1/files", openai)
    app.router.add_get("/google/drive/v3/files", google)
    app.router.add_get("/jsonapi/articles", jsonapi)
    app.router.add_get("/offset/items", offset)
    app.router.add_get("/pages/items", pages)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    api.base = str(server.make_url("")).rstrip("/")
    try:
        yield api
    finally:
        await server.close()


@asynccontextmanager
async def serve(routes: dict[str, Any]) -> AsyncIterator[str]:
    """A loopback server with the given ``path -> handler`` GET routes; yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
