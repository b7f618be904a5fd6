"""paginate(): iteration, limits, safety rules, prefetch and clean early exits, over real
loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import resilient_http as rh
from resilient_http.pagination import Paginator
from resilient_http.testing import FakeClock, MockServer, Reply
from tests._api import ITEMS, install, queries, serve

IDS = [it["id"] for it in ITEMS]


def _link_pages(n: int, per: int = 2) -> tuple[dict[str, Any], list[str]]:
    """n pages of `per` items linked with relative Link headers; records the paths asked."""
    asked: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        asked.append(request.path_qs)
        headers = {"Link": f'</list?page={page + 1}>; rel="next"'} if page < n else {}
        return web.json_response(
            [f"p{page}i{i}" for i in range(per)], headers=headers
        )

    return {"/list": handler}, asked


def _fetch_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "fetch_page" and not t.done()
    ]


async def test_three_link_pages_all_items_in_order_three_requests(
    mock_server: MockServer,
) -> None:
    absolute = mock_server.url("/repos").with_query(page=3)
    mock_server.script(
        "/repos",
        Reply(json=[{"id": 1}, {"id": 2}], headers={"Link": '</repos?page=2>; rel="next"'}),
        Reply(json=[{"id": 3}, {"id": 4}], headers={"Link": f'<{absolute}>; rel="next", '
                                                            '</repos>; rel="first"'}),
        Reply(json=[{"id": 5}], headers={"Link": '</repos>; rel="first"'}),
        repeat_last=False,
    )
    async with aiohttp.ClientSession() as session:
        got = [it["id"] async for it in rh.paginate(session, mock_server.url("/repos"),
                                                     rh.LinkHeader())]
    assert got == [1, 2, 3, 4, 5]
    assert [str(r.url) for r in mock_server.requests_for("/repos")] == [
        "/repos", "/repos?page=2", "/repos?page=3"
    ]


async def test_pages_view_carries_status_headers_number_and_url(mock_server: MockServer) -> None:
    mock_server.script(
        "/list",
        Reply(json=["a"], headers={"Link": '</list?page=2>; rel="next"'}),
        Reply(json=["b"], headers={"X-Total": "2"}),
    )
    async with aiohttp.ClientSession() as session:
        url = mock_server.url("/list")
        pages = [p async for p in rh.paginate(session, url, rh.LinkHeader()).pages()]
    assert [p.number for p in pages] == [1, 2]
    assert [p.status for p in pages] == [200, 200]
    assert pages[1].headers["X-Total"] == "2"
    assert pages[1].url == mock_server.url("/list?page=2")
    assert pages[1].body == pages[1].items == ["b"]


async def test_cross_origin_next_is_refused_by_default(
    mock_server: MockServer, mock_server_factory: Any
) -> None:
    evil = await mock_server_factory()
    evil.script("/x", Reply(json=["leaked"]))
    link = f'<{evil.url("/x")}>; rel=next'
    mock_server.script("/first", Reply(json=["a"], headers={"Link": link}))
    async with aiohttp.ClientSession() as session:
        got: list[str] = []
        with pytest.raises(rh.PaginationError, match="another origin") as info:
            async for it in rh.paginate(
                session, mock_server.url("/first"), rh.LinkHeader(),
                headers={"Authorization": "Bearer t"},
            ):
                got.append(it)
        assert got == ["a"]  # the good page is delivered first
        assert "page 1" in str(info.value)
        assert isinstance(info.value, aiohttp.ClientError)
        assert evil.count("/x") == 0  # the credentials never left
        allowed = [
            it async for it in rh.paginate(
                session, mock_server.url("/first"), rh.LinkHeader(), allow_cross_origin=True,
                headers={"Authorization": "Bearer t", "X-Api-Key": "k", "Accept": "a/b"},
            )
        ]
        assert allowed == ["a", "leaked"]
        # even when allowed, the per-request credentials stay home
        first = mock_server.requests_for("/first")[-1].headers
        assert first["Authorization"] == "Bearer t" and first["X-Api-Key"] == "k"
        [foreign] = evil.requests_for("/x")
        assert "Authorization" not in foreign.headers and "X-Api-Key" not in foreign.headers
        assert foreign.headers["Accept"] == "a/b"


async def test_self_referencing_next_stops_with_pagination_error(mock_server: MockServer) -> None:
    # the next URL is the first one with its query in another order
    mock_server.script("/s", Reply(json=[1], headers={"Link": '</s?b=2&a=1>; rel="next"'}))
    async with aiohttp.ClientSession() as session:
        got = []
        with pytest.raises(rh.PaginationError, match="already fetched"):
            async for it in rh.paginate(session, mock_server.url("/s?a=1&b=2"), rh.LinkHeader()):
                got.append(it)
    assert got == [1]
    assert mock_server.count("/s") == 1


async def test_a_loop_over_two_pages_is_caught() -> None:
    async def a(request: web.Request) -> web.Response:
        return web.json_response([1], headers={"Link": '</b>; rel="next"'})

    async def b(request: web.Request) -> web.Response:
        return web.json_response([2], headers={"Link": '</a>; rel="next"'})

    async with serve({"/a": a, "/b": b}) as base, aiohttp.ClientSession() as session:
        got = []
        with pytest.raises(rh.PaginationError, match=r"page 2 .*already fetched"):
            async for it in rh.paginate(session, base + "/a", rh.LinkHeader()):
                got.append(it)
        assert got == [1, 2]


async def test_repeated_cursor_stops_with_pagination_error() -> None:
    async def stuck(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "x"}], "next_cursor": "same"})

    async with serve({"/c": stuck}) as base, aiohttp.ClientSession() as session:
        with pytest.raises(rh.PaginationError, match="already fetched"):
            async for _ in rh.paginate(session, base + "/c", rh.Cursor()):
                pass


async def test_non_json_page_names_the_page_and_the_problem() -> None:
    async def html(request: web.Request) -> web.Response:
        if "page" not in request.query:
            link = '</p?page=2&api_key=s3cr3t>; rel="next"'
            return web.json_response([1], headers={"Link": link})
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    async with serve({"/p": html}) as base, aiohttp.ClientSession() as session:
        with pytest.raises(rh.PaginationError) as info:
            async for _ in rh.paginate(session, base + "/p", rh.LinkHeader()):
                pass
    message = str(info.value)
    assert "page 2" in message and "not JSON" in message and "text/html" in message
    assert "s3cr3t" not in message  # URLs in errors are redacted


@pytest.mark.parametrize("nested", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1"])
async def test_deeply_nested_json_page_raises_pagination_error(nested: str) -> None:
    async def h(request: web.Request) -> web.Response:
        return web.Response(text=nested, content_type="application/json")

    async with serve({"/deep": h}) as base, aiohttp.ClientSession() as session:
        with pytest.raises(rh.PaginationError, match=r"page 1 .*not JSON.*recursion"):
            async for _ in rh.paginate(session, base + "/deep", rh.LinkHeader()):
                pass


@pytest.mark.parametrize(
    ("body", "strategy", "items", "problem"),
    [
        ({"rows": 3}, rh.LinkHeader(), "rows", "JSON int, not a list"),
        ({"a": [], "b": []}, rh.LinkHeader(), None, "several lists"),
        ({"meta": {}}, rh.LinkHeader(), None, "no list"),
        ({"data": [1]}, rh.LinkHeader(), "results", "no 'results' field"),
        ("just a string", rh.LinkHeader(), None, "not a list or an object"),
    ],
)
async def test_malformed_first_page(body: Any, strategy: Any, items: Any, problem: str) -> None:
    async def h(request: web.Request) -> web.Response:
        return web.json_response(body)

    async with serve({"/m": h}) as base, aiohttp.ClientSession() as session:
        with pytest.raises(rh.PaginationError, match=f"page 1 .*{problem}"):
            async for _ in rh.paginate(session, base + "/m", strategy, items=items):
                pass


async def test_strategy_that_cannot_find_the_next_page_delivers_the_items_first() -> None:
    async def h(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": 1}], "has_more": "maybe"})

    async with serve({"/m": h}) as base, aiohttp.ClientSession() as session:
        got = []
        with pytest.raises(rh.PaginationError, match=r"page 1 .*cannot find the next") as info:
            async for it in rh.paginate(session, base + "/m", rh.presets.stripe()):
                got.append(it)
        assert got == [{"id": 1}]
        assert isinstance(info.value.__cause__, ValueError)


async def test_http_error_page_raises_client_response_error() -> None:
    async def h(request: web.Request) -> web.Response:
        if "page" in request.query:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response([1], headers={"Link": '</h?page=2>; rel="next"'})

    async with serve({"/h": h}) as base, aiohttp.ClientSession() as session:
        it = rh.paginate(session, base + "/h", rh.LinkHeader())
        assert await it.__anext__() == 1
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await it.__anext__()
        assert info.value.status == 401
        with pytest.raises(StopAsyncIteration):  # an iterator that raised is finished
            await it.__anext__()


async def test_max_pages_and_max_items(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/gh/items")
        got = [it async for it in rh.paginate(session, url, rh.presets.github(5), max_pages=2)]
        assert len(got) == 10 and api.count() == 2
        api.clear()
        got = [it async for it in rh.paginate(session, url, rh.presets.github(5), max_items=7)]
        assert [it["id"] for it in got] == IDS[:7] and api.count() == 2
        api.clear()
        pages = [p async for p in rh.paginate(session, url, rh.presets.github(5),
                                              max_items=7).pages()]
        assert [len(p.items) for p in pages] == [5, 5]  # pages are whole
        api.clear()
        got = [it async for it in rh.paginate(session, url, rh.presets.github(5), max_items=10)]
        assert len(got) == 10 and api.count() == 2  # no third request for nothing


async def test_offset_advances_by_items_received_not_by_limit(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        strategy = rh.Offset(page_size=10, total="total")
        url = mock_server.url("/offset/items")
        got = [it["id"] async for it in rh.paginate(session, url, strategy)]
        assert got == IDS
        assert [q["offset"] for q in queries(api, "/offset/items")] == ["0", "7", "14", "21"]
        api.clear()
        got = [it["id"] async for it in rh.paginate(session, url, rh.Offset(page_size=10))]
        assert got == IDS
        assert api.count() == 5  # without total=, the empty page ends it


async def test_page_number_stops_on_empty_page(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/pages/items")
        got = [it["id"] async for it in rh.paginate(session, url, rh.PageNumber(page_size=10))]
        assert got == IDS
        assert [q["page"] for q in queries(api, "/pages/items")] == ["1", "2", "3", "4"]


async def test_params_are_kept_on_every_parameter_built_page(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/stripe/v1/customers")
        got = [it async for it in rh.paginate(session, url, rh.presets.stripe(10),
                                              params={"email": "a+b@x.test"})]
        assert len(got) == 25
        assert {q["email"] for q in queries(api, "/stripe/v1/customers")} == {"a+b@x.test"}


async def test_custom_strategy_is_one_method() -> None:
    class SlackCursor:
        def next(self, page: rh.Page) -> Any:
            cursor = page.body["response_metadata"]["next_cursor"]
            return {"cursor": cursor} if cursor else None

    async def slack(request: web.Request) -> web.Response:
        cursor = int(request.query.get("cursor", "0"))
        nxt = str(cursor + 1) if cursor < 2 else ""
        return web.json_response(
            {"ok": True, "members": [cursor], "response_metadata": {"next_cursor": nxt}}
        )

    async with serve({"/users.list": slack}) as base, aiohttp.ClientSession() as session:
        got = [it async for it in rh.paginate(session, base + "/users.list", SlackCursor())]
    assert got == [0, 1, 2]


async def test_every_page_goes_through_the_session_layers(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        wrapped = rh.wrap(session, rh.FieldMask(["id"]))
        url = mock_server.url("/gh/items")
        got = [it async for it in rh.paginate(wrapped, url, rh.presets.github(10))]
        assert len(got) == 25
        assert [q.get("fields") for q in queries(api, "/gh/items")] == ["id", "id", "id"]


async def test_prefetch_fetches_one_page_ahead_only() -> None:
    asked: list[int] = []
    seen = asyncio.Event()

    async def h(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        asked.append(page)
        seen.set()
        return web.json_response([page], headers={"Link": f'</l?page={page + 1}>; rel="next"'})

    async with serve({"/l": h}) as base, aiohttp.ClientSession() as session:
        it = rh.paginate(session, base + "/l", rh.LinkHeader(), prefetch=True, max_pages=4)
        async with contextlib.aclosing(it):
            assert await it.__anext__() == 1
            seen.clear()
            await asyncio.wait_for(seen.wait(), 5)
            for _ in range(20):
                await asyncio.sleep(0)
            assert asked == [1, 2]  # page 2 is on its way while we hold page 1, not page 3
            assert [x async for x in it] == [2, 3, 4]
            assert asked == [1, 2, 3, 4]  # max_pages: no prefetch of page 5
            assert it._task is None


def _gated_pages() -> tuple[dict[str, Any], asyncio.Event, asyncio.Event]:
    started, gate = asyncio.Event(), asyncio.Event()

    async def h(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        if page > 1:
            started.set()
            await gate.wait()
        link = f'</g?page={page + 1}>; rel="next"'
        return web.json_response([page, page], headers={"Link": link})

    return {"/g": h}, started, gate


async def _pool_is_free(session: aiohttp.ClientSession, url: str) -> None:
    # limit=1: this request can only run if the prefetch gave its connection back
    async with session.get(url) as resp:
        await resp.read()


async def test_early_break_with_aclose_leaves_no_task_and_no_response() -> None:
    routes, started, gate = _gated_pages()
    async with serve(routes) as base:
        routes_ok = base + "/g?page=1"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            it = rh.paginate(session, base + "/g", rh.LinkHeader(), prefetch=True)
            async with contextlib.aclosing(it):
                async for _ in it:
                    await asyncio.wait_for(started.wait(), 5)  # page 2 is in flight
                    assert len(_fetch_tasks()) == 1
                    break
            assert _fetch_tasks() == []  # aclose() waited for the cancelled task
            await asyncio.wait_for(_pool_is_free(session, routes_ok), 5)
        gate.set()


async def test_early_break_without_close_cancels_when_collected() -> None:
    routes, started, gate = _gated_pages()
    async with serve(routes) as base:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            async for _ in rh.paginate(session, base + "/g", rh.LinkHeader(), prefetch=True):
                await asyncio.wait_for(started.wait(), 5)
                break
            gc.collect()
            for _ in range(50):
                if not _fetch_tasks():
                    break
                await asyncio.sleep(0)
            assert _fetch_tasks() == []
            await asyncio.wait_for(_pool_is_free(session, base + "/g?page=1"), 5)
        gate.set()


async def test_prefetch_error_surfaces_at_its_page_and_is_retrieved_on_close() -> None:
    async def h(request: web.Request) -> web.Response:
        if "page" in request.query:
            return web.Response(text="oops")
        return web.json_response([1], headers={"Link": '</e?page=2>; rel="next"'})

    async with serve({"/e": h}) as base, aiohttp.ClientSession() as session:
        it = rh.paginate(session, base + "/e", rh.LinkHeader(), prefetch=True)
        async with contextlib.aclosing(it):
            assert await it.__anext__() == 1
            with pytest.raises(rh.PaginationError, match="page 2"):
                await it.__anext__()
        # stopping before reaching the failed page: its error is retrieved, nothing is logged
        it2 = rh.paginate(session, base + "/e", rh.LinkHeader(), prefetch=True)
        async with it2:
            assert await it2.__anext__() == 1
            task = it2._task
            assert task is not None
            await asyncio.wait((task,))
        assert it2._task is None


async def test_cancelling_the_consumer_cancels_the_prefetch() -> None:
    routes, started, gate = _gated_pages()
    async with serve(routes) as base, aiohttp.ClientSession() as session:
        it = rh.paginate(session, base + "/g", rh.LinkHeader(), prefetch=True)

        async def consume() -> None:
            async for _ in it:
                pass

        task = asyncio.get_running_loop().create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(10):
            await asyncio.sleep(0)
        assert _fetch_tasks() == []
        gate.set()


async def test_single_use() -> None:
    routes, _ = _link_pages(1)
    async with serve(routes) as base, aiohttp.ClientSession() as session:
        it = rh.paginate(session, base + "/list", rh.LinkHeader())
        assert [x async for x in it] == ["p1i0", "p1i1"]
        with pytest.raises(RuntimeError, match="already iterated"):
            it.pages()
        assert isinstance(it, Paginator) and "Paginator GET" in repr(it)


async def test_arguments_are_validated() -> None:
    async with aiohttp.ClientSession() as session:
        s = rh.LinkHeader()
        with pytest.raises(TypeError, match="session"):
            rh.paginate(object(), "http://x.test/", s)
        with pytest.raises(TypeError, match="strategy"):
            rh.paginate(session, "http://x.test/", object())
        with pytest.raises(ValueError, match="absolute"):
            rh.paginate(session, "/relative", s)
        with pytest.raises(ValueError, match="max_pages"):
            rh.paginate(session, "http://x.test/", s, max_pages=0)
        with pytest.raises(ValueError, match="max_items"):
            rh.paginate(session, "http://x.test/", s, max_items=True)
        with pytest.raises(TypeError, match="prefetch"):
            rh.paginate(session, "http://x.test/", s, prefetch=1)
        with pytest.raises(ValueError, match="items"):
            rh.paginate(session, "http://x.test/", s, items="")


async def test_readme_examples_pokeapi_offset_and_rick_and_morty_pages(
    mock_server: MockServer,
) -> None:
    # PokeAPI: {"count", "next", "results"} with offset/limit
    mock_server.script(
        "/api/v2/pokemon",
        Reply(json={"count": 3, "next": "...",
                    "results": [{"name": "bulbasaur"}, {"name": "ivysaur"}]}),
        Reply(json={"count": 3, "next": None, "results": [{"name": "venusaur"}]}),
        repeat_last=False,
    )
    # Rick and Morty: {"info": {"pages"}, "results"} with ?page=
    mock_server.script(
        "/api/character",
        Reply(json={"info": {"count": 3, "pages": 2}, "results": [{"id": 1}, {"id": 2}]}),
        Reply(json={"info": {"count": 3, "pages": 2}, "results": [{"id": 3}]}),
        repeat_last=False,
    )
    # Microsoft Graph: "@odata.nextLink" (a key with a dot) and items in "value"
    mock_server.script(
        "/v1.0/users",
        Reply(json={"value": [{"id": "a"}],
                    "@odata.nextLink": str(mock_server.url("/v1.0/users?$skiptoken=X"))}),
        Reply(json={"value": [{"id": "b"}]}),
        repeat_last=False,
    )
    async with aiohttp.ClientSession() as session:
        pokemon = rh.paginate(session, mock_server.url("/api/v2/pokemon"),
                              rh.Offset(page_size=2, total="count", items="results"))
        assert [p["name"] async for p in pokemon] == ["bulbasaur", "ivysaur", "venusaur"]
        assert [dict(r.query) for r in mock_server.requests_for("/api/v2/pokemon")] == [
            {"offset": "0", "limit": "2"}, {"offset": "2", "limit": "2"}
        ]
        characters = rh.paginate(session, mock_server.url("/api/character"),
                                 rh.PageNumber(total_pages="info.pages", items="results"))
        assert [c["id"] async for c in characters] == [1, 2, 3]
        assert mock_server.count("/api/character") == 2
        users = rh.paginate(session, mock_server.url("/v1.0/users"),
                            rh.BodyLink(("@odata.nextLink",), items="value"))
        assert [u["id"] async for u in users] == ["a", "b"]
        assert mock_server.requests_for("/v1.0/users")[1].query["$skiptoken"] == "X"


async def test_a_page_that_fails_once_is_retried_by_the_session_retry(
    mock_server: MockServer,
) -> None:
    mock_server.script(
        "/r",
        Reply(json=[1], headers={"Link": '</r?page=2>; rel="next"'}),
        Reply(503),
        Reply(json=[2]),
        repeat_last=False,
    )
    clock = FakeClock(autojump=True)
    retry = rh.Retry(3, backoff=rh.Backoff(1, jitter="none"), clock=clock)
    async with aiohttp.ClientSession(middlewares=(retry,)) as session:
        got = [it async for it in rh.paginate(session, mock_server.url("/r"), rh.LinkHeader())]
    assert got == [1, 2]
    assert [str(r.url) for r in mock_server.requests_for("/r")] == ["/r", "/r?page=2", "/r?page=2"]
    assert clock.sleeps == [1.0]


async def test_same_origin_redirects_are_followed_with_the_credentials(
    mock_server: MockServer,
) -> None:
    mock_server.script("/old", Reply(301, headers={"Location": "/new?page=1"}))
    mock_server.script("/new", Reply(json=["a"], headers={"Link": '</next>; rel="next"'}))
    mock_server.script("/next", Reply(303, headers={"Location": "/last"}))
    mock_server.script("/last", Reply(json=["b"]))
    async with aiohttp.ClientSession() as session:
        pages = [
            p async for p in rh.paginate(
                session, mock_server.url("/old"), rh.LinkHeader(),
                headers={"PRIVATE-TOKEN": "t"},
            ).pages()
        ]
    assert [p.items for p in pages] == [["a"], ["b"]]
    assert pages[0].url == mock_server.url("/new?page=1")  # the URL after the redirect
    assert [r.path for r in mock_server.requests] == ["/old", "/new", "/next", "/last"]
    assert all(r.headers["PRIVATE-TOKEN"] == "t" for r in mock_server.requests)


async def test_redirect_limits_and_bad_locations(mock_server: MockServer) -> None:
    mock_server.script("/loop", Reply(302, headers={"Location": "/loop"}))
    mock_server.script("/ftp", Reply(302, headers={"Location": "ftp://h/x"}))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(rh.PaginationError, match="more than 3 redirects"):
            await rh.paginate(
                session, mock_server.url("/loop"), rh.LinkHeader(), max_redirects=3
            ).__anext__()
        assert mock_server.count("/loop") == 4
        with pytest.raises(rh.PaginationError, match="not http"):
            await rh.paginate(session, mock_server.url("/ftp"), rh.LinkHeader()).__anext__()
        # allow_redirects=False: the 3xx page is the page (and not JSON)
        with pytest.raises(rh.PaginationError, match="not JSON"):
            await rh.paginate(
                session, mock_server.url("/loop"), rh.LinkHeader(), allow_redirects=False
            ).__anext__()
    for kwargs, error in [({"max_redirects": -1}, ValueError), ({"max_redirects": "3"}, ValueError),
                          ({"allow_redirects": 1}, TypeError)]:
        with pytest.raises(error, match=next(iter(kwargs))):
            rh.paginate(session, mock_server.url("/loop"), rh.LinkHeader(), **kwargs)
