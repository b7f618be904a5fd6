"""The Cache layer on a real loopback server (MockServer), time driven by FakeClock."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import aiohttp
import pytest
from _cachetest import Setup, get, settle
from _layers import Again  # re-runs the layers inside it, as Retry does

import resilient_http as rh
from resilient_http.cache import Cache, MemoryStore
from resilient_http.testing import FakeClock, MockServer, Reply

pytest_plugins = ("_cachefixtures",)  # the fixtures: clock, server, make


async def primed(server: MockServer, make: Any, body: bytes, **cacheable: Any) -> Setup:
    """A cache client that has already fetched ``/r``, served by ``server.cacheable`` with
    ``body`` and ``cacheable``: the one request the server has seen so far."""
    server.cacheable("/r", body, **cacheable)
    c = make()
    await get(c.session, server.url("/r"))
    return c


# --------------------------------------------------------------------------- acceptance


async def test_second_get_of_a_fresh_entry_makes_no_request(server: MockServer, make: Any) -> None:
    server.cacheable("/r", b"hello", cache_control="max-age=60")
    c = make()
    status, body, first = await get(c.session, server.url("/r"))
    status2, body2, second = await get(c.session, server.url("/r"))
    assert (status, body) == (status2, body2) == (200, b"hello")
    assert server.count("/r") == 1
    assert type(second) is aiohttp.ClientResponse
    assert second is not first
    assert second.headers["Age"] == "0"
    assert second.url == server.url("/r")
    assert c.names() == ["cache.miss", "cache.stored", "cache.hit"]


async def test_no_store_is_never_stored(server: MockServer, make: Any) -> None:
    server.cacheable("/r", b"x", cache_control="no-store")
    c = make()
    for _ in range(3):
        await get(c.session, server.url("/r"))
    assert server.count("/r") == 3
    assert c.cache.store.count == 0  # type: ignore[attr-defined]
    assert [e.detail.get("reason") for e in c.events if e.name == "cache.not_stored"] == [
        "no-store"
    ] * 3


async def test_max_age_reused_before_revalidated_after(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    c = await primed(server, make, b"body", etag="v1", cache_control="max-age=1")
    await clock.advance(0.5)
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 1
    await clock.advance(0.6)
    status, body, _ = await get(c.session, server.url("/r"))
    assert server.count("/r") == 2
    assert server.requests_for("/r")[1].headers["If-None-Match"] == '"v1"'
    assert (status, body) == (200, b"body")  # the server said 304; the caller sees the 200
    assert "cache.revalidated" in c.names()
    # The refreshed entry is fresh again: no request for the next second.
    await clock.advance(0.5)
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 2


async def test_a_304_updates_the_stored_headers(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    resource = server.cacheable(
        "/r", b"body", etag="v1", cache_control="max-age=1", extra_headers={"X-Rev": "1"}
    )
    c = make()
    await get(c.session, server.url("/r"))
    resource.update(extra_headers={"X-Rev": "2"})  # same ETag: the server answers 304
    await clock.advance(2)
    _, body, resp = await get(c.session, server.url("/r"))
    assert body == b"body" and resp.headers["X-Rev"] == "2"
    _, _, again = await get(c.session, server.url("/r"))
    assert again.headers["X-Rev"] == "2"
    assert server.count("/r") == 2


async def test_a_changed_resource_replaces_the_entry(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    resource = server.cacheable("/r", b"old", etag="v1", cache_control="max-age=1")
    c = make()
    await get(c.session, server.url("/r"))
    resource.update(body=b"new", etag="v2")
    await clock.advance(2)
    assert (await get(c.session, server.url("/r")))[1] == b"new"
    assert (await get(c.session, server.url("/r")))[1] == b"new"
    assert server.count("/r") == 2


async def test_vary_keeps_separate_entries(server: MockServer, make: Any) -> None:
    server.cacheable("/r", b"base", etag="v1", cache_control="max-age=60", vary="Accept")
    c = make()
    json_ = await get(c.session, server.url("/r"), headers={"Accept": "application/json"})
    xml = await get(c.session, server.url("/r"), headers={"Accept": "application/xml"})
    assert json_[1] != xml[1]
    assert (await get(c.session, server.url("/r"), headers={"Accept": "application/json"}))[
        1
    ] == json_[1]
    assert (await get(c.session, server.url("/r"), headers={"Accept": "application/xml"}))[
        1
    ] == xml[1]
    assert server.count("/r") == 2
    assert c.cache.store.count == 2  # type: ignore[attr-defined]


async def test_post_invalidates_the_urls_get_entries(server: MockServer, make: Any) -> None:
    server.cacheable("/items", b"list", cache_control="max-age=60", method="GET")
    server.cacheable("/items/7", b"seven", cache_control="max-age=60", method="GET")
    server.cacheable("/elsewhere", b"else", cache_control="max-age=60", method="GET")
    server.script("/items", Reply(201, headers={"Location": "/items/7"}), method="POST")
    c = make()
    for path in ("/items", "/items/7", "/elsewhere"):
        await get(c.session, server.url(path))
        await get(c.session, server.url(path))
    assert server.count() == 3
    async with c.session.post(server.url("/items"), json={"name": "x"}) as resp:
        assert resp.status == 201
    for path in ("/items", "/items/7", "/elsewhere"):
        await get(c.session, server.url(path))
    assert server.count("/items") == 3  # GET, POST, GET again
    assert server.count("/items/7") == 2  # invalidated through Location
    assert server.count("/elsewhere") == 1
    assert "cache.invalidated" in c.names()


async def test_a_failed_unsafe_request_invalidates_nothing(server: MockServer, make: Any) -> None:
    server.cacheable("/r", b"x", cache_control="max-age=60", method="GET")
    server.script("/r", 500, method="DELETE")
    c = make()
    await get(c.session, server.url("/r"))
    async with c.session.delete(server.url("/r")) as resp:
        assert resp.status == 500
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 2


async def test_100_concurrent_gets_of_a_cold_url_make_one_request(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/slow", Reply(200, body=b"payload", delay=1.0,
                                 headers={"Cache-Control": "max-age=60"}))
    c = make()

    async def one() -> tuple[bytes, aiohttp.ClientResponse]:
        async with c.session.get(server.url("/slow")) as resp:
            return await resp.read(), resp

    tasks = [asyncio.create_task(one()) for _ in range(100)]
    await server.wait_for_requests(1, path="/slow")
    await asyncio.sleep(0)
    await clock.advance(1.0)
    results = await asyncio.gather(*tasks)
    assert server.count("/slow") == 1
    assert {body for body, _ in results} == {b"payload"}
    assert len({id(resp) for _, resp in results}) == 100  # each caller its own response


async def test_a_failed_leader_does_not_poison_the_waiters(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script(
        "/flaky",
        Reply(503, delay=1.0),
        Reply(200, body=b"ok", headers={"Cache-Control": "max-age=60"}),
    )
    c = make()

    async def one() -> int:
        async with c.session.get(server.url("/flaky")) as resp:
            await resp.read()
            return resp.status

    tasks = [asyncio.create_task(one()) for _ in range(10)]
    await server.wait_for_requests(1, path="/flaky")
    await asyncio.sleep(0)
    assert server.count("/flaky") == 1  # the others wait for the leader
    await clock.advance(1.0)
    statuses = await asyncio.gather(*tasks)
    assert sorted(statuses) == [200] * 9 + [503]


async def test_max_bytes_is_honoured(server: MockServer, make: Any) -> None:
    c = make(max_bytes=20_000, maxsize=10_000)
    body = b"x" * 1000
    for n in range(200):  # ten times the volume
        server.script(f"/r{n}", Reply(200, body=body, headers={"Cache-Control": "max-age=60"}))
        await get(c.session, server.url(f"/r{n}"))
        store: MemoryStore = c.cache.store  # type: ignore[assignment]
        assert store.size <= 20_000
    assert 10 <= store.count < 20
    # the most recent ones are the ones kept
    await get(c.session, server.url("/r199"))
    assert server.count("/r199") == 1


async def test_maxsize_is_honoured(server: MockServer, make: Any) -> None:
    c = make(maxsize=5)
    for n in range(20):
        server.script(f"/r{n}", Reply(200, body=b"b", headers={"Cache-Control": "max-age=60"}))
        await get(c.session, server.url(f"/r{n}"))
    assert c.cache.store.count == 5  # type: ignore[attr-defined]


async def test_a_response_larger_than_max_bytes_is_not_stored(
    server: MockServer, make: Any
) -> None:
    server.script("/big", Reply(200, body=b"x" * 5000, headers={"Cache-Control": "max-age=60"}))
    c = make(max_bytes=4096)
    await get(c.session, server.url("/big"))
    await get(c.session, server.url("/big"))
    assert server.count("/big") == 2
    assert {"reason": "too large"} in [dict(e.detail) for e in c.events]


# --------------------------------------------------------------------------- freshness details


async def test_the_emitted_age_accounts_for_the_received_one(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"x", headers={"Cache-Control": "max-age=100",
                                                         "Age": "10"}))
    c = make()
    await get(c.session, server.url("/r"))
    await clock.advance(5)
    _, _, resp = await get(c.session, server.url("/r"))
    assert resp.headers["Age"] == "15"
    await clock.advance(85)
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 2  # 10 + 90 >= 100: stale


@pytest.mark.parametrize(
    ("reply", "options", "fresh_for", "then_stale_after"),
    [
        pytest.param(Reply(200, body=b"x"), {"ttl": 10}, 9, 2,
                     id="ttl_applies_without_freshness_information"),
        pytest.param(Reply(200, body=b"x", headers={"Cache-Control": "no-store"}),
                     {"ttl": 5, "respect_headers": False}, 0, 6,
                     id="respect_headers_false_is_a_pure_ttl_cache"),
    ],
)
async def test_ttl_serves_from_the_cache_then_expires(
    server: MockServer, make: Any, clock: FakeClock, reply: Reply, options: dict[str, Any],
    fresh_for: float, then_stale_after: float,
) -> None:
    server.script("/r", reply)
    c = make(**options)
    await get(c.session, server.url("/r"))
    if fresh_for:
        await clock.advance(fresh_for)
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 1
    await clock.advance(then_stale_after)
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 2


async def test_ttl_zero_revalidates_every_time(
    server: MockServer, make: Any
) -> None:
    server.cacheable("/r", b"x", etag="v")
    c = make(ttl=0)
    for _ in range(3):
        assert (await get(c.session, server.url("/r")))[:2] == (200, b"x")
    assert server.count("/r") == 3
    assert [r.headers.get("If-None-Match") for r in server.requests_for("/r")] == [
        None, '"v"', '"v"'
    ]


async def test_callers_own_conditional_request_gets_304_from_a_fresh_entry(
    server: MockServer, make: Any
) -> None:
    c = await primed(server, make, b"x", etag="v1", cache_control="max-age=60")
    status, body, resp = await get(c.session, server.url("/r"),
                                   headers={"If-None-Match": '"v1"'})
    assert (status, body) == (304, b"")
    assert resp.headers["ETag"] == '"v1"'
    status, body, _ = await get(c.session, server.url("/r"), headers={"If-None-Match": '"v0"'})
    assert (status, body) == (200, b"x")
    assert server.count("/r") == 1


async def test_request_no_cache_revalidates(server: MockServer, make: Any) -> None:
    c = await primed(server, make, b"x", etag="v1", cache_control="max-age=60")
    status, body, _ = await get(c.session, server.url("/r"),
                                headers={"Cache-Control": "no-cache"})
    assert (status, body) == (200, b"x")
    assert server.count("/r") == 2
    assert server.requests_for("/r")[1].headers["If-None-Match"] == '"v1"'


async def test_only_if_cached_answers_504_on_a_miss(server: MockServer, make: Any) -> None:
    c = make()
    status, _, _ = await get(c.session, server.url("/ok"),
                             headers={"Cache-Control": "only-if-cached"})
    assert status == 504
    assert server.count("/ok") == 0


async def test_head_is_cached_apart_from_get(server: MockServer, make: Any) -> None:
    server.cacheable("/r", b"body", cache_control="max-age=60")
    c = make()
    async with c.session.head(server.url("/r")) as resp:
        assert resp.status == 200
    assert (await get(c.session, server.url("/r")))[1] == b"body"
    async with c.session.head(server.url("/r")) as resp:
        assert await resp.read() == b""
    assert server.count("/r") == 2


async def test_a_304_for_another_representation_asks_again_unconditionally(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script(
        "/r",
        Reply(200, body=b"old", headers={"ETag": '"v1"', "Cache-Control": "max-age=1"}),
        Reply(304, headers={"ETag": '"v9"'}),
        Reply(200, body=b"fresh", headers={"ETag": '"v2"', "Cache-Control": "max-age=60"}),
    )
    c = make()
    await get(c.session, server.url("/r"))
    await clock.advance(2)
    assert (await get(c.session, server.url("/r")))[:2] == (200, b"fresh")
    sent = [r.headers.get("If-None-Match") for r in server.requests_for("/r")]
    assert sent == [None, '"v1"', None]
    assert (await get(c.session, server.url("/r")))[1] == b"fresh"
    assert server.count("/r") == 3


async def test_callers_conditional_request_on_a_stale_entry_gets_the_servers_304(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    c = await primed(server, make, b"x", etag="v1", cache_control="max-age=1")
    await clock.advance(2)
    status, body, _ = await get(c.session, server.url("/r"), headers={"If-None-Match": '"v1"'})
    assert (status, body) == (304, b"")
    assert server.count("/r") == 2
    # The 304 freshened the entry: the next plain GET is a hit with the full body.
    assert (await get(c.session, server.url("/r")))[:2] == (200, b"x")
    assert server.count("/r") == 2


async def test_waiters_with_another_vary_value_go_on_their_own(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"v", delay=1.0,
                              headers={"Cache-Control": "max-age=60", "Vary": "Accept"}))
    c = make()
    first = asyncio.create_task(get(c.session, server.url("/r"), headers={"Accept": "a"}))
    await server.wait_for_requests(1, path="/r")
    same = asyncio.create_task(get(c.session, server.url("/r"), headers={"Accept": "a"}))
    other = asyncio.create_task(get(c.session, server.url("/r"), headers={"Accept": "b"}))
    await asyncio.sleep(0)
    await clock.advance(1.0)
    await server.wait_for_requests(2, path="/r")
    await clock.advance(1.0)
    await asyncio.gather(first, same, other)
    assert [r.headers["Accept"] for r in server.requests_for("/r")] == ["a", "b"]


async def test_waiters_get_the_stale_entry_when_the_leader_fails(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"good", headers={"Cache-Control": "max-age=1"}))
    c = make(stale_if_error=60)
    await get(c.session, server.url("/r"))
    await clock.advance(2)
    server.script("/r", Reply(503, delay=1.0))
    tasks = [asyncio.create_task(get(c.session, server.url("/r"))) for _ in range(5)]
    await server.wait_for_requests(2, path="/r")
    await asyncio.sleep(0)
    await clock.advance(1.0)
    results = await asyncio.gather(*tasks)
    assert {(status, body) for status, body, _ in results} == {(200, b"good")}
    assert server.count("/r") == 2


async def test_a_hit_creates_no_reference_cycles(server: MockServer, make: Any) -> None:
    c = await primed(server, make, b"x", cache_control="max-age=60")
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            await get(c.session, server.url("/r"))
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert server.count("/r") == 1


# --------------------------------------------------------------------------- stale-*


async def test_stale_if_error_on_5xx_and_on_connection_errors(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"good", headers={"Cache-Control": "max-age=1"}))
    c = make(stale_if_error=60)
    await get(c.session, server.url("/r"))
    await clock.advance(2)
    server.script("/r", Reply(503))
    status, body, _ = await get(c.session, server.url("/r"))
    assert (status, body) == (200, b"good")
    server.script("/r", Reply(reset=True))
    status, body, _ = await get(c.session, server.url("/r"))
    assert (status, body) == (200, b"good")
    assert [e.detail["why"] for e in c.events if e.name == "cache.served_stale"] == [
        "error", "error"
    ]
    await clock.advance(60)
    server.script("/r", Reply(503))
    assert (await get(c.session, server.url("/r")))[0] == 503  # past the window


async def test_stale_if_error_from_the_response_directive(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"good",
                              headers={"Cache-Control": "max-age=1, stale-if-error=10"}))
    c = make()
    await get(c.session, server.url("/r"))
    await clock.advance(5)
    server.script("/r", Reply(500))
    assert (await get(c.session, server.url("/r")))[:2] == (200, b"good")


async def test_must_revalidate_forbids_stale_if_error(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"good",
                              headers={"Cache-Control": "max-age=1, must-revalidate"}))
    c = make(stale_if_error=60)
    await get(c.session, server.url("/r"))
    await clock.advance(2)
    server.script("/r", Reply(500))
    assert (await get(c.session, server.url("/r")))[0] == 500


async def test_stale_while_revalidate_serves_stale_and_refreshes_in_the_background(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    resource = server.cacheable("/r", b"old", etag="v1", cache_control="max-age=1")
    c = make(stale_while_revalidate=30)
    await get(c.session, server.url("/r"))
    resource.update(body=b"new", etag="v2")
    await clock.advance(2)
    status, body, _ = await get(c.session, server.url("/r"))
    assert (status, body) == (200, b"old")  # served at once, stale
    assert len(c.cache.tasks) == 1
    await server.wait_for_requests(2, path="/r")
    await settle(lambda: not c.cache.tasks)
    assert not c.cache.tasks
    assert (await get(c.session, server.url("/r")))[1] == b"new"
    assert server.count("/r") == 2
    assert server.requests_for("/r")[1].headers["If-None-Match"] == '"v1"'


async def test_refresh_tasks_are_cancelled_by_close_and_never_outlive_the_session(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"x", headers={"Cache-Control": "max-age=1"}))
    c = make(stale_while_revalidate=30)
    await get(c.session, server.url("/r"))
    server.script("/r", Reply(200, body=b"y", delay=100.0))
    await clock.advance(2)
    await get(c.session, server.url("/r"))
    assert len(c.cache.tasks) == 1
    await server.wait_for_requests(2, path="/r")
    await c.cache.close()
    assert not c.cache.tasks
    # A refresh in flight when the session closes ends with it.
    await clock.advance(2)
    await get(c.session, server.url("/r"))
    (task,) = c.cache.tasks
    await server.wait_for_requests(3, path="/r")
    await c.session.close()
    await settle(task.done)
    assert task.done() and not c.cache.tasks
    assert not [t for t in asyncio.all_tasks() if "Cache._refresh" in repr(t)]


# --------------------------------------------------------------------------- privacy


async def test_private_cache_keys_by_credentials(server: MockServer, make: Any) -> None:
    server.cacheable("/me", b"me", cache_control="max-age=60")
    c = make()
    alice = {"Authorization": "Bearer alice"}
    bob = {"Authorization": "Bearer bob"}
    await get(c.session, server.url("/me"), headers=alice)
    await get(c.session, server.url("/me"), headers=alice)
    assert server.count("/me") == 1
    await get(c.session, server.url("/me"), headers=bob)
    await get(c.session, server.url("/me"))
    await get(c.session, server.url("/me"), headers={"Cookie": "sid=alice"})
    assert server.count("/me") == 4
    for entry in c.cache.store.get(str(server.url("/me"))):  # type: ignore[union-attr]
        assert "alice" not in repr(entry) and "bob" not in repr(entry)


async def test_shared_cache_rules(server: MockServer, make: Any) -> None:
    server.cacheable("/private", b"p", cache_control="private, max-age=60")
    server.cacheable("/authed", b"a", cache_control="max-age=60")
    server.cacheable("/public", b"pub", cache_control="public, max-age=60")
    server.cacheable("/s", b"s", cache_control="max-age=0, s-maxage=60")
    c = make(shared=True)
    auth = {"Authorization": "Bearer x"}
    for _ in range(2):
        await get(c.session, server.url("/private"))
        await get(c.session, server.url("/authed"), headers=auth)
        await get(c.session, server.url("/public"), headers=auth)
        await get(c.session, server.url("/s"))
    assert server.count("/private") == 2
    assert server.count("/authed") == 2
    assert server.count("/public") == 1
    assert server.count("/s") == 1


# --------------------------------------------------------------------------- composition


async def test_in_a_stack_and_through_wrap(server: MockServer, clock: FakeClock) -> None:
    server.cacheable("/r", b"x", cache_control="max-age=60")
    cache = Cache(clock=clock)
    stack = rh.Stack(cache, rh.Timeout(30, clock=clock), rh.Timeout(10, clock=clock))
    async with aiohttp.ClientSession(middlewares=(stack,)) as session:
        assert (await get(session, server.url("/r")))[1] == b"x"
        assert (await get(session, server.url("/r")))[1] == b"x"
    async with aiohttp.ClientSession() as plain:
        api = rh.wrap(plain, cache, rh.Timeout(10, clock=clock))
        async with api.get(server.url("/r")) as resp:
            assert await resp.read() == b"x"
            assert type(resp) is aiohttp.ClientResponse
    assert server.count("/r") == 1


async def test_in_the_middle_of_a_stack_with_a_retrying_layer(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/r", Reply(503), Reply(200, body=b"x", headers={"Cache-Control": "max-age=60"}))
    stack = rh.Stack(rh.Timeout(30, clock=clock), Cache(clock=clock), Again(2),
                     rh.Timeout(10, clock=clock))
    async with aiohttp.ClientSession(middlewares=(stack,)) as session:
        assert (await get(session, server.url("/r")))[:2] == (200, b"x")
        assert (await get(session, server.url("/r")))[:2] == (200, b"x")
    assert server.count("/r") == 2  # two attempts for the miss, none for the hit


async def test_standard_with_a_cache(server: MockServer) -> None:
    server.cacheable("/r", b"x", cache_control="max-age=60")
    (stack,) = rh.standard(cache=60)
    assert isinstance(stack.layers[0], Cache)
    async with aiohttp.ClientSession(middlewares=(stack,)) as session:
        await get(session, server.url("/r"))
        await get(session, server.url("/r"))
    assert server.count("/r") == 1
    with pytest.raises(TypeError, match="cache"):
        rh.standard(cache="60")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache"):
        rh.standard(cache=-1)


async def test_an_async_store_works_too(server: MockServer, clock: FakeClock) -> None:
    class AsyncStore:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        async def get(self, key: str) -> Any:
            return self.data.get(key)

        async def set(self, key: str, variants: Any) -> None:
            self.data[key] = variants

        async def delete(self, key: str) -> None:
            self.data.pop(key, None)

        async def clear(self) -> None:
            self.data.clear()

    server.cacheable("/r", b"x", etag="v", cache_control="max-age=1")
    store = AsyncStore()
    cache = Cache(clock=clock, store=store)
    async with aiohttp.ClientSession(middlewares=(cache,)) as session:
        await get(session, server.url("/r"))
        await settle(lambda: store.data)
        assert len(store.data) == 1
        assert (await get(session, server.url("/r")))[1] == b"x"
        assert server.count("/r") == 1
        await clock.advance(2)
        assert (await get(session, server.url("/r")))[:2] == (200, b"x")
        assert server.count("/r") == 2
        async with session.post(server.url("/r")):
            pass
        await settle(lambda: not store.data)
        assert store.data == {}
    await cache.close()
    await cache.clear()


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ttl": -1}, ValueError, "ttl"),
        ({"ttl": "1"}, TypeError, "ttl"),
        ({"maxsize": 0}, ValueError, "maxsize"),
        ({"max_bytes": 1.5}, TypeError, "max_bytes"),
        ({"shared": 1}, TypeError, "shared"),
        ({"methods": ("POST",)}, ValueError, "methods"),
        ({"methods": "GET"}, TypeError, "methods"),
        ({"stale_if_error": -2}, ValueError, "stale_if_error"),
        ({"key": 3}, TypeError, "key"),
        ({"store": {}}, TypeError, "store"),
        ({"clock": object()}, TypeError, "clock"),
    ],
)
def test_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Cache(**kwargs)


def test_repr_and_defaults() -> None:
    cache = Cache()
    assert repr(cache) == "Cache(ttl=60, maxsize=1024)"
    assert (cache.ttl, cache.maxsize, cache.max_bytes, cache.shared) == (
        60.0, 1024, 64 * 2**20, False
    )
    assert repr(MemoryStore()).startswith("MemoryStore(maxsize=1024")
    gc.collect()


async def test_a_hit_without_hooks_still_reaches_the_log_and_the_sinks(
    server: MockServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A hit skips building its event when nobody listens: the logger at DEBUG and a
    # process-wide sink are listeners too, not only the layer's own hooks.
    server.cacheable("/r", b"x", cache_control="max-age=60")
    seen: list[rh.events.Event] = []
    async with aiohttp.ClientSession(middlewares=(Cache(clock=clock),)) as session:
        await get(session, server.url("/r"))
        with caplog.at_level(logging.DEBUG, logger="resilient_http"):
            await get(session, server.url("/r"))
        assert "cache.hit GET" in caplog.text
        caplog.clear()
        rh.events.add_sink(seen.append)
        try:
            await get(session, server.url("/r"))
        finally:
            rh.events.remove_sink(seen.append)
        await get(session, server.url("/r"))  # nobody listens: nothing is built
    assert [e.name for e in seen] == ["cache.hit"]
    assert "cache.hit" not in caplog.text
    assert server.count("/r") == 1


def test_the_key_of_a_url_is_its_text() -> None:
    from yarl import URL

    from resilient_http._cache_request import _KEYS_SIZE, KEYS, url_key

    urls = [URL(f"http://example.com:80/p/{n}?q={n}#f") for n in range(_KEYS_SIZE + 10)]
    for url in urls + urls:
        assert url_key(url) == str(url)
    assert len(KEYS) <= _KEYS_SIZE
    # Equal URLs with different texts keep their own texts (the table goes by identity).
    assert (url_key(URL("http://a.example")), url_key(URL("http://a.example/"))) == (
        "http://a.example", "http://a.example/"
    )
