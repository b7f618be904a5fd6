"""API-shaped MockServer routes, one per pagination style, answering from the request's own
parameters (so the tests check what the client really sent), and a tiny aiohttp.web server
for tests that need a handler to block."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_request import BaseRequest

from resilient_http.testing import MockServer, Reply

ITEMS = [{"id": f"it_{i:03d}", "n": i} for i in range(25)]

Handler = Callable[[BaseRequest], Reply]


class Computed:
    """A MockServer responder that computes each reply from the request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        return self.handler(request)


def _int(request: BaseRequest, name: str, default: int) -> int:
    return int(request.query.get(name, default))


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _untoken(token: str) -> int:
    return int(json.loads(base64.urlsafe_b64decode(token))["o"])


def github(request: BaseRequest) -> Reply:
    page, per_page = _int(request, "page", 1), _int(request, "per_page", 30)
    start = (page - 1) * per_page
    last = max(1, -(-len(ITEMS) // per_page))
    base = request.url.with_query({})
    links = []
    if page < last:
        links.append(f'<{base.with_query(page=page + 1, per_page=per_page)}>; rel="next"')
    links.append(f'<{base.with_query(page=last, per_page=per_page)}>; rel="last"')
    return Reply(json=ITEMS[start : start + per_page], headers={"Link": ", ".join(links)})


def _after(request: BaseRequest, param: str) -> tuple[list[dict[str, Any]], bool]:
    limit = _int(request, "limit", 10)
    after = request.query.get(param)
    start = 0 if after is None else next(i for i, it in enumerate(ITEMS) if it["id"] == after) + 1
    return ITEMS[start : start + limit], start + limit < len(ITEMS)


def stripe(request: BaseRequest) -> Reply:
    chunk, more = _after(request, "starting_after")
    return Reply(json={"object": "list", "url": "/v1/customers", "has_more": more, "data": chunk})


def openai(request: BaseRequest) -> Reply:
    chunk, more = _after(request, "after")
    return Reply(
        json={
            "object": "list",
            "data": chunk,
            "first_id": chunk[0]["id"] if chunk else None,
            "last_id": chunk[-1]["id"] if chunk else None,
            "has_more": more,
        }
    )


def google(request: BaseRequest) -> Reply:
    size = _int(request, "pageSize", 10)
    token = request.query.get("pageToken")
    start = 0 if token is None else _untoken(token)
    # Like real Google APIs, page 2 is short (a filter dropped items): not the end.
    served = size // 2 if start == size else size
    body: dict[str, Any] = {"kind": "drive#fileList", "files": ITEMS[start : start + served]}
    if start + served < len(ITEMS):
        body["nextPageToken"] = _token(start + served)
    return Reply(json=body)


def jsonapi(request: BaseRequest) -> Reply:
    size = _int(request, "page[size]", 10)
    number = _int(request, "page[number]", 1)
    start = (number - 1) * size
    chunk = [
        {"type": "articles", "id": it["id"], "attributes": it}
        for it in ITEMS[start : start + size]
    ]
    links: dict[str, Any] = {"self": str(request.rel_url), "next": None}
    if start + size < len(ITEMS):
        # a relative link, as JSON:API servers often send
        links["next"] = f"/jsonapi/articles?page%5Bnumber%5D={number + 1}&page%5Bsize%5D={size}"
    return Reply(json={"data": chunk, "included": [{"type": "people", "id": "9"}], "links": links})


def offset(request: BaseRequest) -> Reply:
    off = _int(request, "offset", 0)
    limit = min(_int(request, "limit", 10), 7)  # the server caps the limit at 7
    return Reply(json={"results": ITEMS[off : off + limit], "total": len(ITEMS)})


def pages(request: BaseRequest) -> Reply:
    page, per_page = _int(request, "page", 1), _int(request, "per_page", 10)
    start = (page - 1) * per_page
    return Reply(json=ITEMS[start : start + per_page])


ROUTES: dict[str, Handler] = {
    "/gh/items": github,
    "/stripe/v1/customers": stripe,
    "/openai/v1/files": openai,
    "/google/drive/v3/files": google,
    "/jsonapi/articles": jsonapi,
    "/offset/items": offset,
    "/pages/items": pages,
}


def install(server: MockServer) -> MockServer:
    """Add the API-shaped routes to ``server``."""
    for path, handler in ROUTES.items():
        server.respond_with(path, Computed(handler))
    return server


def queries(server: MockServer, path: str) -> list[dict[str, str]]:
    """The query of each request ``path`` received, in order."""
    return [dict(r.query) for r in server.requests_for(path)]


@asynccontextmanager
async def serve(routes: dict[str, Any]) -> AsyncIterator[str]:
    """A loopback aiohttp.web server with ``path -> async handler`` GET routes, for handlers
    that must block or answer per request; yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
