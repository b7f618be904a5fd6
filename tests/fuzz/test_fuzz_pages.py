"""End-to-end fuzz of the JSON readers: random page and job bodies served by a loopback
server through ``paginate()`` and ``poll()``: only the documented errors come out."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from _gen import json_bytes, json_values
from _loop import LoopRunner
from _profiles import E2E
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

import resilient_http as rh
from resilient_http.testing import MockServer, Reply

STRATEGIES = [
    rh.LinkHeader(), rh.BodyLink(), rh.Cursor(), rh.Cursor(item_field="id"),
    rh.Cursor(item_field="id", has_more="has_more"), rh.PageToken(), rh.Offset(total="total"),
    rh.PageNumber(total_pages="total_pages"),
]


class Served:
    """Answers every request with the example's body (status 200, JSON content type), then,
    after ``first`` requests, with ``then`` (when set)."""

    def __init__(self) -> None:
        self.body = b""
        self.first = 1
        self.then: bytes | None = None
        self.seen = 0

    def set(self, body: bytes, then: bytes | None = None) -> None:
        self.body, self.then, self.seen = body, then, 0

    def respond(self, request: Any, body: bytes, wall: float) -> Reply:
        self.seen += 1
        raw = self.body if self.then is None or self.seen <= self.first else self.then
        return Reply(200, body=raw, headers={"Content-Type": "application/json"})


page_bodies = st.one_of(
    json_bytes(),
    st.fixed_dictionaries({}, optional={
        "data": st.lists(st.one_of(json_values(4), st.fixed_dictionaries({"id": json_values(2)})),
                         max_size=3),
        "links": st.fixed_dictionaries({"next": st.sampled_from(["/items?p=2", "?p=3", "",
                                                                 "http://other.example/"])}),
        "has_more": json_values(2),
        "next_cursor": json_values(2),
        "nextPageToken": json_values(2),
        "total": json_values(2),
        "total_pages": json_values(2),
    }).map(lambda d: json.dumps(d).encode()),
)
job_bodies = st.one_of(
    json_bytes(),
    st.fixed_dictionaries({}, optional={"status": json_values(4)}).map(
        lambda d: json.dumps(d).encode()),
)
DONE = json.dumps({"status": "done"}).encode()


async def _start() -> tuple[MockServer, aiohttp.ClientSession, Served]:
    server = MockServer(record=False)
    await server.start()
    served = Served()
    server.respond_with("/items", served)
    server.respond_with("/job", served)
    return server, aiohttp.ClientSession(), served


async def _stop(server: MockServer, session: aiohttp.ClientSession) -> None:
    await session.close()
    await server.close()


def test_paginate_and_poll_survive_random_bodies() -> None:
    runner = LoopRunner()
    server, session, served = runner.run(_start())

    async def paginate(strategy: Any) -> None:
        try:
            async for page in rh.paginate(session, server.url("/items"), strategy,
                                          max_pages=4).pages():
                assert isinstance(page.items, (list, tuple))
                assert isinstance(page.headers, CIMultiDictProxy)
        except (rh.PaginationError, aiohttp.ClientError):
            pass

    async def poll() -> None:
        try:
            body = await rh.poll(session, server.url("/job"), done={"done", "failed"},
                                 status="status", interval=0, timeout=10)
        except aiohttp.ClientError:  # ContentTypeError: not JSON
            return
        assert body == {"status": "done"}

    @E2E
    @given(page_bodies, st.sampled_from(STRATEGIES), job_bodies)
    def example(page: bytes, strategy: Any, job: bytes) -> None:
        served.set(page)
        runner.run(paginate(strategy))
        served.set(job, then=DONE)
        runner.run(poll())

    try:
        example()
    finally:
        runner.run(_stop(server, session))
        runner.close()


# Found by the harness above; kept as plain regression tests.

DEEP = b"[" * 100_000


async def test_a_job_status_that_is_a_list_or_an_object_is_not_final(
    mock_server: MockServer,
) -> None:
    mock_server.script("/job", Reply(json={"status": []}), Reply(json={"status": {"a": 1}}),
                       Reply(json={"status": "done"}))
    async with aiohttp.ClientSession() as session:
        body = await rh.poll(session, mock_server.url("/job"), done={"done"}, status="status",
                             interval=0, timeout=10)
    assert body == {"status": "done"}
    assert mock_server.count("/job") == 3


async def test_a_deeply_nested_job_body_is_a_content_type_error(mock_server: MockServer) -> None:
    mock_server.script("/job", Reply(body=DEEP, headers={"Content-Type": "application/json"}))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ContentTypeError, match="not JSON"):
            await rh.poll(session, mock_server.url("/job"), done={"done"}, status="status",
                          interval=0, timeout=10)


async def test_a_deeply_nested_page_is_a_pagination_error(mock_server: MockServer) -> None:
    mock_server.script("/items", Reply(body=DEEP, headers={"Content-Type": "application/json"}))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(rh.PaginationError):
            async for _ in rh.paginate(session, mock_server.url("/items"), rh.LinkHeader()):
                pass
