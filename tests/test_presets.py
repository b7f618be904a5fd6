"""Each preset against a server shaped like the real API (answers computed from the request)."""

from __future__ import annotations

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.testing import MockServer
from tests._api import ITEMS, install, queries

IDS = [it["id"] for it in ITEMS]


async def test_github_link_pages(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        got = [it["id"] async for it in rh.paginate(session, mock_server.url("/gh/items"),
                                                     rh.presets.github(page_size=10))]
        assert got == IDS
        assert queries(api, "/gh/items") == [
            {"per_page": "10"},
            {"page": "2", "per_page": "10"},
            {"page": "3", "per_page": "10"},
        ]


async def test_stripe_has_more_and_starting_after(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/stripe/v1/customers")
        got = [it["id"] async for it in rh.paginate(session, url, rh.presets.stripe(page_size=10))]
        assert got == IDS
        assert queries(api, "/stripe/v1/customers") == [
            {"limit": "10"},
            {"limit": "10", "starting_after": "it_009"},
            {"limit": "10", "starting_after": "it_019"},
        ]


async def test_the_callers_page_size_in_the_url_or_params_wins_over_the_presets(
    mock_server: MockServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/stripe/v1/customers").with_query(limit=12)
        got = [it["id"] async for it in rh.paginate(session, url, rh.presets.stripe())]
        assert got == IDS
        assert queries(api, "/stripe/v1/customers") == [
            {"limit": "12"},
            {"limit": "12", "starting_after": "it_011"},
            {"limit": "12", "starting_after": "it_023"},
        ]
        url = mock_server.url("/gh/items")
        paged = rh.paginate(session, url, rh.presets.github(), params={"per_page": 10})
        assert [it["id"] async for it in paged] == IDS
        assert queries(api, "/gh/items")[0] == {"per_page": "10"}


async def test_the_callers_start_offset_and_page_number_win(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/offset/items").with_query(offset=20)
        strategy = rh.Offset(page_size=3, items="results")
        got = [it["id"] async for it in rh.paginate(session, url, strategy)]
        assert got == IDS[20:]
        assert queries(api, "/offset/items")[0] == {"offset": "20", "limit": "3"}


async def test_openai_has_more_and_after(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        pages = [
            page async for page in rh.paginate(
                session, mock_server.url("/openai/v1/files"), rh.presets.openai(page_size=12)
            ).pages()
        ]
        assert [len(p.items) for p in pages] == [12, 12, 1]
        assert [p.number for p in pages] == [1, 2, 3]
        assert pages[-1].body["has_more"] is False
        assert [q.get("after") for q in queries(api, "/openai/v1/files")] == [
            None, "it_011", "it_023"
        ]


async def test_google_page_token_short_page_is_not_the_end(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        url = mock_server.url("/google/drive/v3/files")
        it = rh.paginate(session, url, rh.presets.google(page_size=10))
        pages = [p async for p in it.pages()]
        assert [len(p.items) for p in pages] == [10, 5, 10]  # page 2 is short; it goes on
        assert [it["id"] for p in pages for it in p.items] == IDS
        asked = queries(api, "/google/drive/v3/files")
        assert [q["pageSize"] for q in asked] == ["10", "10", "10"]
        assert "pageToken" not in asked[0] and asked[1]["pageToken"] and asked[2]["pageToken"]


async def test_jsonapi_links_next_relative(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = install(mock_server)
        got = [
            it["id"] async for it in rh.paginate(
                session, mock_server.url("/jsonapi/articles"), rh.presets.jsonapi(page_size=10)
            )
        ]
        assert got == IDS  # items from "data", not "included"
        assert [q.get("page[number]") for q in queries(api, "/jsonapi/articles")] == [
            None, "2", "3"
        ]


@pytest.mark.parametrize(
    ("preset", "strategy", "size_param"),
    [
        (rh.presets.github, rh.LinkHeader, "per_page"),
        (rh.presets.stripe, rh.Cursor, "limit"),
        (rh.presets.openai, rh.Cursor, "limit"),
        (rh.presets.google, rh.PageToken, "pageSize"),
        (rh.presets.jsonapi, rh.BodyLink, "page[size]"),
    ],
)
def test_presets_map_page_size_to_the_api_parameter(
    preset: object, strategy: type, size_param: str
) -> None:
    made = preset(page_size=7)  # type: ignore[operator]
    assert isinstance(made, strategy)
    assert made.first_params() == {size_param: 7}


def test_google_older_apis_use_max_results() -> None:
    assert rh.presets.google(50, size_param="maxResults").first_params() == {"maxResults": 50}


# -- job presets ---------------------------------------------------------------------------


def test_openai_fine_tuning_job_states() -> None:
    job = rh.presets.openai_fine_tuning
    for status, done in [("validating_files", False), ("queued", False), ("running", False),
                         ("succeeded", True), ("failed", True), ("cancelled", True)]:
        assert job._done({"status": status}) is done
        assert job._status is not None and job._status({"status": status}) == status


def test_openai_batch_states() -> None:
    job = rh.presets.openai_batch
    assert not job._done({"status": "finalizing"})
    assert job._done({"status": "expired"})


def test_google_operation_states() -> None:
    op = rh.presets.google_operation
    read = op._status
    assert read is not None
    assert read({"name": "operations/1"}) == "running"
    assert read({"name": "operations/1", "metadata": {"state": "CREATING"}}) == "CREATING"
    assert read({"done": True, "response": {}}) == "done"
    assert read({"done": True, "error": {"code": 3}}) == "failed"
    assert not op._done({"metadata": {"state": "CREATING"}})
    assert op._done({"done": True, "response": {}})
    assert not op._done({"done": "yes"})
