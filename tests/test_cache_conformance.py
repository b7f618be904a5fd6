"""Cache conformance and hostile input on a real loopback server: raw header bytes, Age,
304 updates, Set-Cookie, huge delta-seconds, stale-while-revalidate, single flight."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from _cachetest import get, settle

import resilient_http as rh
from resilient_http.testing import FakeClock, MockServer, Reply

pytest_plugins = ("_cachefixtures",)  # the fixtures: clock, server, make


def _without_age(resp: aiohttp.ClientResponse) -> tuple[list[Any], list[Any]]:
    headers = [(k, v) for k, v in resp.headers.items() if k != "Age"]
    raw = [(k, v) for k, v in resp.raw_headers if k != b"Age"]
    return headers, raw


async def test_a_hit_returns_the_exact_header_bytes_of_the_miss(
    server: MockServer, make: Any
) -> None:
    server.script("/r", Reply(200, body=b"x", headers=[
        ("Cache-Control", "max-age=60"), ("X-Title", "Prix 10€"), ("X-Name", "Zoë"),
    ]))
    c = make()
    _, body, miss = await get(c.session, server.url("/r"))
    _, body2, hit = await get(c.session, server.url("/r"))
    assert server.count("/r") == 1 and body == body2 == b"x"
    assert hit.headers["X-Title"] == "Prix 10€"
    assert (b"X-Title", "Prix 10€".encode()) in hit.raw_headers
    assert _without_age(hit) == _without_age(miss)
    assert hit.headers["Age"] == "0" and (b"Age", b"0") in hit.raw_headers


@pytest.mark.parametrize(
    "ages", [["0, 0"], ["3600, 3600"], ["0", "0"], ["0", "7200"]], ids=str
)
async def test_an_age_list_or_a_repeated_age_makes_the_response_stale(
    server: MockServer, make: Any, ages: list[str]
) -> None:
    server.script("/r", Reply(200, body=b"x", headers=[
        ("Cache-Control", "max-age=7200"), *(("Age", a) for a in ages),
    ]))
    c = make()
    await get(c.session, server.url("/r"))
    await get(c.session, server.url("/r"))
    assert server.count("/r") == 2  # stale from the start: asked again


async def test_a_304_updates_every_field_but_content_length(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    resource = server.cacheable("/r", b"body", etag="v1", cache_control="max-age=1",
                                extra_headers={"Content-MD5": "old", "X-Rev": "1"})
    c = make()
    await get(c.session, server.url("/r"))
    resource.update(extra_headers={"Content-MD5": "new", "X-Rev": "2"})
    await clock.advance(2)
    _, body, resp = await get(c.session, server.url("/r"))
    assert server.requests_for("/r")[1].headers["If-None-Match"] == '"v1"'
    assert body == b"body"
    assert resp.headers["Content-MD5"] == "new" and resp.headers["X-Rev"] == "2"
    assert resp.headers["Content-Length"] == "4"


async def test_set_cookie_private_cache_replays_it_shared_cache_does_not_store_it(
    server: MockServer, make: Any
) -> None:
    server.script("/r", Reply(200, body=b"x", headers=[
        ("Cache-Control", "max-age=60"), ("Set-Cookie", "sid=1"), ("X-Hop", "1"),
        ("Connection", "X-Hop"),
    ]))
    private = make()
    await get(private.session, server.url("/r"))
    _, _, hit = await get(private.session, server.url("/r"))
    assert server.count("/r") == 1
    assert hit.headers["Set-Cookie"] == "sid=1" and "X-Hop" not in hit.headers
    shared = make(shared=True)
    await get(shared.session, server.url("/r"))
    _, _, again = await get(shared.session, server.url("/r"))
    assert server.count("/r") == 3  # never stored: another client never gets sid=1
    assert again.headers["Set-Cookie"] == "sid=1"  # the origin's own answer
    assert "cache.not_stored" in shared.names()


HUGE = "9" * 5000


@pytest.mark.parametrize(("response", "request_cc"), [
    ([("Cache-Control", f"max-age={HUGE}")], None),
    ([("Cache-Control", "max-age=60"), ("Age", HUGE)], None),
    ([("Cache-Control", f"max-age=0, stale-if-error={HUGE}")], None),
    ([("Cache-Control", f"max-age=0, stale-while-revalidate={HUGE}")], None),
    ([("Cache-Control", f"s-maxage={HUGE}, max-age=1")], None),
    ([("Cache-Control", "max-age=60")], f"max-age={HUGE}"),
    ([("Cache-Control", "max-age=60")], f"min-fresh={HUGE}"),
    ([("Cache-Control", "max-age=0"), ("ETag", '"x"')], f"max-stale={HUGE}"),
], ids=lambda v: str(v)[:40])
async def test_delta_seconds_longer_than_4300_digits(
    server: MockServer, make: Any, response: list[tuple[str, str]], request_cc: str | None
) -> None:
    server.script("/r", Reply(200, body=b"x", headers=response))
    c = make(shared=True)
    headers = {"Cache-Control": request_cc} if request_cc else {}
    for _ in range(2):
        status, body, _ = await get(c.session, server.url("/r"), headers=headers)
        assert (status, body) == (200, b"x")


async def test_max_age_0_with_stale_while_revalidate_is_stored_and_served_stale(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"old", headers={
        "Cache-Control": "max-age=0, stale-while-revalidate=60"}))
    c = make()
    await get(c.session, server.url("/r"))
    assert "cache.stored" in c.names()
    server.script("/r", Reply(200, body=b"new", headers={"Cache-Control": "max-age=60"}))
    await clock.advance(1)
    assert (await get(c.session, server.url("/r")))[1] == b"old"  # at once, stale
    await server.wait_for_requests(2, path="/r")
    await settle(lambda: not c.cache.tasks)
    assert (await get(c.session, server.url("/r")))[1] == b"new"
    assert server.count("/r") == 2


async def test_the_background_refresh_goes_through_the_layers_inside_the_cache(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"old", headers={
        "Cache-Control": "max-age=1, stale-while-revalidate=60"}))
    breaker = rh.CircuitBreaker()
    c = make(inner=(breaker,))
    await get(c.session, server.url("/r"))
    breaker.isolate()
    await clock.advance(2)
    assert (await get(c.session, server.url("/r")))[1] == b"old"  # stale, refreshing
    await settle(lambda: not c.cache.tasks)
    assert not c.cache.tasks
    assert server.count("/r") == 1  # the isolated breaker stopped the refresh
    assert "cache.refresh_failed" in c.names()
    breaker.reset()
    assert (await get(c.session, server.url("/r")))[1] == b"old"
    await settle(lambda: not c.cache.tasks)
    assert server.count("/r") == 2


async def test_a_cancelled_leader_hands_the_flight_to_one_follower(
    server: MockServer, make: Any, clock: FakeClock
) -> None:
    server.script("/r", Reply(200, body=b"ok", delay=1.0, headers={"Cache-Control": "max-age=60"}))
    c = make()
    leader = asyncio.create_task(get(c.session, server.url("/r")))
    await server.wait_for_requests(1, path="/r")
    followers = [asyncio.create_task(get(c.session, server.url("/r"))) for _ in range(10)]
    await asyncio.sleep(0)
    leader.cancel()
    await server.wait_for_requests(2, path="/r")
    for _ in range(5):
        await asyncio.sleep(0)
    await clock.advance(1.0)
    results = await asyncio.gather(*followers)
    assert {body for _, body, _ in results} == {b"ok"}
    assert server.count("/r") == 2  # the cancelled leader's, and one follower's
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_a_refresh_through_wrap_is_stored_by_the_task(
    server: MockServer, clock: FakeClock
) -> None:
    resource = server.cacheable("/r", b"old", etag="v1",
                                cache_control="max-age=1, stale-while-revalidate=60")
    cache = rh.Cache(clock=clock)
    async with aiohttp.ClientSession() as session:
        api = rh.wrap(session, cache)
        assert (await get(api, server.url("/r")))[1] == b"old"
        resource.update(body=b"new", etag="v2")
        await clock.advance(2)
        assert (await get(api, server.url("/r")))[1] == b"old"  # stale, refreshing
        await server.wait_for_requests(2, path="/r")
        await settle(lambda: not cache.tasks)
        assert (await get(api, server.url("/r")))[1] == b"new"
        assert server.count("/r") == 2
    await cache.close()
