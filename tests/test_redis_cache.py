"""Cache on Redis (RedisCacheStore) against a real server (tests/_redis.py): hits across
processes, round trips per hit, the fleet's single flight, TTLs, eviction, outages."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

import resilient_http as rh
from resilient_http.redis.cache import RedisCacheStore
from resilient_http.testing import MockServer, MockServerProcess, Reply
from tests._redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "_redis_cache_child.py"


def commands(client: redis.Redis) -> dict[str, int]:
    """``INFO commandstats`` as {command: calls}, without INFO itself."""
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()
            if k != "cmdstat_info"}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


class Client:
    """A cache client: one ``RedisStore`` (as a process would have), one session."""

    def __init__(self, store: rh.RedisStore, cache: rh.Cache, session: aiohttp.ClientSession):
        self.store, self.cache, self.session = store, cache, session
        self.events: list[rh.Event] = []

    async def get(self, url: Any, **kwargs: Any) -> tuple[int, bytes, aiohttp.ClientResponse]:
        async with self.session.get(url, **kwargs) as resp:
            return resp.status, await resp.read(), resp

    async def settle(self) -> None:
        """Wait for the background writes to Redis."""
        await asyncio.gather(*self.cache.tasks)


@pytest.fixture
async def make(redis_url: str) -> AsyncIterator[Any]:
    opened: list[Client] = []

    def build(url: str = redis_url, *, on_error: str = "local", socket_timeout: float = 1.0,
              l1: int | None = None, **options: Any) -> Client:
        store = rh.RedisStore(url, on_error=on_error, socket_timeout=socket_timeout)
        shared: Any = store
        if l1 is not None or "lock_ttl" in options or "max_entry_bytes" in options:
            extra = {k: options.pop(k) for k in ("lock_ttl", "max_entry_bytes") if k in options}
            shared = RedisCacheStore(store, l1=l1 or 0, **extra)
        events: list[rh.Event] = []
        cache = rh.Cache(store=shared, on_event=events.append, **options)
        client = Client(store, cache, aiohttp.ClientSession(middlewares=(cache,)))
        client.events = events
        opened.append(client)
        return client

    yield build
    for client in opened:
        await client.cache.close()
        await client.session.close()
        await client.store.aclose()


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    async with MockServer() as server:
        yield server


def names(client: Client) -> list[str]:
    return [e.name for e in client.events]


# --------------------------------------------------------------------------- acceptance


async def test_a_hit_from_another_process_has_the_same_bytes_and_headers(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/r", "héllo \x00 bytes", etag="v1", cache_control="max-age=60",
                     extra_headers=[("X-Note", "naïve ✓"), ("X-Twice", "a"), ("X-Twice", "b")])
    a = make()
    status, body, first = await a.get(server.url("/r"))
    await a.settle()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), redis_url, str(server.url("/r")),
        stdout=asyncio.subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    child = json.loads(out)
    assert server.count("/r") == 1  # the child did not go upstream
    assert child["events"] == ["cache.hit"]
    assert (child["status"], bytes.fromhex(child["body"])) == (status, body)
    theirs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in child["headers"]]
    assert theirs[-1] == (b"Age", theirs[-1][1])
    # exactly what a hit from the memory store has: every field's bytes, in order, repeats
    ours = [(k.encode(), v.encode("utf-8", "surrogateescape")) for k, v in first.headers.items()]
    assert theirs[:-1] == ours
    assert (b"X-Note", "naïve ✓".encode()) in theirs


async def test_a_hit_costs_one_round_trip_and_none_with_the_l1(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/r", b"x" * 100, cache_control="max-age=60")
    a, b, c = make(), make(), make(l1=16)
    await a.get(server.url("/r"))
    await a.settle()
    await b.get(server.url("/r"))  # b connects
    await c.get(server.url("/r"))  # fills c's L1
    stats = redis.Redis.from_url(redis_url)
    before = commands(stats)
    for _ in range(10):
        _, body, resp = await b.get(server.url("/r"))
        assert body == b"x" * 100
        assert type(resp) is aiohttp.ClientResponse
    assert delta(before, commands(stats)) == {"hgetall": 10}
    before = commands(stats)
    for _ in range(10):
        assert (await c.get(server.url("/r")))[1] == b"x" * 100
    assert delta(before, commands(stats)) == {}
    assert server.count("/r") == 1
    stats.close()


@pytest.mark.timeout(180)  # eight interpreters starting on a shared 2-core machine
async def test_eight_processes_missing_one_key_make_one_upstream_request(
    redis_url: str,
) -> None:
    config = {"routes": [{"path": "/slow", "script": [{
        "status": 200, "body": "one for all", "delay": 0.5,
        "headers": {"Cache-Control": "max-age=60"}}], "repeat_last": True}]}
    client = redis.Redis.from_url(redis_url)
    async with MockServerProcess(config=config) as upstream:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(CHILD), redis_url, str(upstream.url("/slow")),
                "--barrier", "t:barrier", stdout=asyncio.subprocess.PIPE, env=env,
            )
            for _ in range(8)
        ]
        deadline = time.monotonic() + 120
        while int(client.get("t:barrier") or 0) < 8:
            assert time.monotonic() < deadline, "the processes did not start"
            await asyncio.sleep(0.01)
        client.set("t:barrier:go", 1)
        outs = [json.loads((await asyncio.wait_for(p.communicate(), 60))[0]) for p in procs]
        stats = await upstream.stats()
    client.close()
    assert stats["paths"]["/slow"]["count"] == 1, stats
    assert {bytes.fromhex(o["body"]) for o in outs} == {b"one for all"}
    waited = [o for o in outs if o["events"] == ["cache.hit"]]
    assert len(waited) == 7, outs


# --------------------------------------------------------------------------- layout


async def test_variants_share_one_hash_one_field_each_and_every_key_has_a_ttl(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/v", b"v", cache_control="max-age=60", vary="Accept")
    a = make(stale_if_error=100)
    for accept in ("text/plain", "application/json", "text/plain"):
        await a.get(server.url("/v"), headers={"Accept": accept})
    await a.settle()
    assert server.count("/v") == 2
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("*")
    hashes = [k for k in keys if client.type(k) == b"hash"]
    assert hashes == [f"rh:cache:{{{server.url('/v')}}}".encode()]
    assert client.hlen(hashes[0]) == 2
    assert all(client.pttl(k) > 0 for k in keys), {k: client.pttl(k) for k in keys}
    # freshness (60 s) + stale-if-error (100 s), no validator to keep it longer for
    assert 155_000 < client.pttl(hashes[0]) <= 160_000
    client.close()


async def test_a_validator_keeps_the_entry_for_revalidation(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/e", b"e", etag="v1", cache_control="max-age=10")
    a = make()
    await a.get(server.url("/e"))
    await a.settle()
    client = redis.Redis.from_url(redis_url)
    assert 305_000 < client.pttl(f"rh:cache:{{{server.url('/e')}}}") <= 310_000  # 10 + 300
    client.close()


async def test_hostile_and_foreign_values_are_misses(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/h", b"h", cache_control="max-age=60")
    a = make()
    await a.get(server.url("/h"))
    await a.settle()
    client = redis.Redis.from_url(redis_url)
    key = f"rh:cache:{{{server.url('/h')}}}"
    for field in client.hkeys(key):
        client.hset(key, field, b"rhC\x02" + b"\xff" * 40)  # another version
    client.hset(key, "junk", b"\x00")
    client.close()
    b = make()
    status, body, _ = await b.get(server.url("/h"))
    assert (status, body) == (200, b"h")
    assert server.count("/h") == 2
    assert names(b)[:1] == ["cache.miss"]


async def test_a_response_larger_than_max_entry_bytes_is_not_stored(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/big", b"b" * 5000, cache_control="max-age=60")
    a = make(max_entry_bytes=4096)
    assert a.cache.max_bytes == 4096
    for _ in range(2):
        assert (await a.get(server.url("/big")))[1] == b"b" * 5000
    await a.settle()
    assert server.count("/big") == 2
    assert redis.Redis.from_url(redis_url).keys("rh:cache:*:lock:*") != []  # landed marks
    assert [e.detail["reason"] for e in a.events if e.name == "cache.not_stored"] == [
        "too large"] * 2


# --------------------------------------------------------------------------- invalidation, L1


async def test_an_unsafe_request_invalidates_for_every_process(
    make: Any, server: MockServer
) -> None:
    server.cacheable("/doc", b"d", cache_control="max-age=60")
    server.script("/doc", 204, method="POST")
    a, b = make(), make(l1=8)
    await a.get(server.url("/doc"))
    await a.settle()
    await b.get(server.url("/doc"))  # a hit, in b's L1 now
    async with a.session.post(server.url("/doc")) as resp:
        assert resp.status == 204
    await a.settle()
    await a.get(server.url("/doc"))
    assert server.count("/doc") == 3  # GET, POST, GET again: a saw the invalidation
    await b.settle()
    async with b.session.post(server.url("/doc")) as resp:
        assert resp.status == 204
    await b.settle()
    await b.get(server.url("/doc"))  # b's own invalidation empties its L1 at once
    assert server.count("/doc") == 5


async def test_the_l1_sees_another_process_write_after_l1_ttl(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/l", b"old", cache_control="max-age=60")
    a = make()
    store = rh.RedisStore(redis_url)
    shared = RedisCacheStore(store, l1=8, l1_ttl=0.2)
    b_cache = rh.Cache(store=shared)
    async with aiohttp.ClientSession(middlewares=(b_cache,)) as b_session:
        await a.get(server.url("/l"))
        await a.settle()
        async with b_session.get(server.url("/l")) as resp:
            assert await resp.read() == b"old"
        server.cacheable("/l", b"new", cache_control="max-age=60")
        async with a.session.get(server.url("/l"), headers={"Cache-Control": "no-cache"}) as r:
            assert await r.read() == b"new"
        await a.settle()
        async with b_session.get(server.url("/l")) as resp:
            assert await resp.read() == b"old"  # from the L1, within l1_ttl
        await asyncio.sleep(0.25)
        async with b_session.get(server.url("/l")) as resp:
            assert await resp.read() == b"new"
    await store.aclose()


# --------------------------------------------------------------------------- single flight


async def test_a_dead_lock_holder_blocks_the_key_at_most_lock_ttl(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/d", b"d", cache_control="max-age=60")
    a = make(lock_ttl=0.4)
    client = redis.Redis.from_url(redis_url)
    client.set(f"rh:cache:{{{server.url('/d')}}}:lock:-", "someone-dead", px=400)
    client.close()
    started = time.monotonic()
    status, body, _ = await a.get(server.url("/d"))
    took = time.monotonic() - started
    assert (status, body) == (200, b"d")
    assert 0.3 < took < 2.0
    assert server.count("/d") == 1


async def test_local_waiters_ride_on_the_fleet_flight(
    make: Any, server: MockServer
) -> None:
    server.script("/s", Reply(200, body="s", delay=0.2, headers={"Cache-Control": "max-age=60"}))
    a, b = make(), make()
    results = await asyncio.gather(*(c.get(server.url("/s")) for c in (a, b, a, b, a)))
    assert {r[1] for r in results} == {b"s"}
    assert server.count("/s") == 1


async def test_an_uncacheable_answer_lets_the_waiters_go_at_once(
    make: Any, server: MockServer
) -> None:
    server.script("/u", Reply(200, body="u", delay=0.2, headers={"Cache-Control": "no-store"}))
    a, b = make(lock_ttl=5), make(lock_ttl=5)
    started = time.monotonic()
    await asyncio.gather(a.get(server.url("/u")), b.get(server.url("/u")))
    assert time.monotonic() - started < 1.5  # not lock_ttl
    assert server.count("/u") == 2


# --------------------------------------------------------------------------- outages


@pytest.mark.parametrize("on_error", ["local", "open", "closed"])
async def test_redis_killed_mid_run(
    make: Any, server: MockServer, redis_proc: RedisServer, on_error: str
) -> None:
    server.cacheable("/k", b"k", cache_control="max-age=60")
    a = make(redis_proc.url, on_error=on_error, socket_timeout=0.2)
    await a.get(server.url("/k"))
    await a.settle()
    await a.get(server.url("/k"))
    assert server.count("/k") == 1
    redis_proc.kill()
    started = time.monotonic()
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append((await a.get(server.url("/k")))[:2])
        except rh.StoreUnavailable:
            outcomes.append("unavailable")
        await a.settle()
    assert time.monotonic() - started < 3 * 0.2 + 1.0  # never hangs
    if on_error == "closed":
        assert outcomes == ["unavailable"] * 3
        assert server.count("/k") == 1
    elif on_error == "open":
        assert outcomes == [(200, b"k")] * 3
        assert server.count("/k") == 4  # every call a miss, nothing stored
    else:
        assert outcomes == [(200, b"k")] * 3
        assert server.count("/k") == 2  # one miss, then hits from the local store
    redis_proc.restart()
    deadline = time.monotonic() + 5
    while not a.store.healthy:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await a.get(server.url("/k"))  # Redis is empty again: a miss that is stored there
    await a.settle()
    before = server.count("/k")
    await a.get(server.url("/k"))
    assert server.count("/k") == before


async def test_a_paused_redis_costs_at_most_the_socket_timeout(
    make: Any, server: MockServer, redis_proc: RedisServer
) -> None:
    server.cacheable("/p", b"p", cache_control="max-age=60")
    a = make(redis_proc.url, socket_timeout=0.2)
    redis_proc.pause()
    try:
        started = time.monotonic()
        status, body, _ = await a.get(server.url("/p"))
        assert (status, body) == (200, b"p")
        assert time.monotonic() - started < 1.0
        await a.settle()
    finally:
        redis_proc.resume()


async def test_evicted_keys_are_misses(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/ev", b"e" * 1000, cache_control="max-age=60")
    a = make()
    await a.get(server.url("/ev"))
    await a.settle()
    client = redis.Redis.from_url(redis_url)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", used + 2**20)
    for n in range(64):  # 4 MiB of other keys: ours goes
        client.set(f"junk:{n}", b"j" * 2**16)
    assert not client.exists(f"rh:cache:{{{server.url('/ev')}}}")
    client.close()
    status, body, _ = await a.get(server.url("/ev"))
    assert (status, body) == (200, b"e" * 1000)
    assert server.count("/ev") == 2
    assert a.store.healthy


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"l1": -1}, ValueError, "l1"),
        ({"l1": 1.5}, TypeError, "l1"),
        ({"l1_bytes": 0}, ValueError, "l1_bytes"),
        ({"l1_ttl": 0}, ValueError, "l1_ttl"),
        ({"max_entry_bytes": 0}, ValueError, "max_entry_bytes"),
        ({"lock_ttl": -1}, ValueError, "lock_ttl"),
        ({"keep_stale": -1}, ValueError, "keep_stale"),
        ({"local": {}}, TypeError, "local"),
    ],
)
def test_configuration_is_validated(kwargs: dict[str, Any], error: type, match: str) -> None:
    store = rh.RedisStore("redis://127.0.0.1:1/0")
    with pytest.raises(error, match=match):
        RedisCacheStore(store, **kwargs)
    with pytest.raises(TypeError, match="store"):
        RedisCacheStore(object())  # type: ignore[arg-type]


def test_cache_wraps_a_redis_store() -> None:
    store = rh.RedisStore("redis://127.0.0.1:1/0")
    cache = rh.Cache(store=store)
    assert type(cache.store) is RedisCacheStore
    assert cache.store.redis is store
    assert cache.max_bytes == 2**20


async def test_a_forgotten_variant_leaves_the_hash(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.script(
        "/f",
        Reply(200, body="one", headers={"ETag": '"a"', "Cache-Control": "max-age=0"}),
        Reply(304, headers={"ETag": '"b"'}),  # validates another representation: forget ours
        Reply(200, body="two", headers={"Cache-Control": "no-store"}),
    )
    a = make()
    await a.get(server.url("/f"))
    await a.settle()
    client = redis.Redis.from_url(redis_url)
    key = f"rh:cache:{{{server.url('/f')}}}"
    assert client.hlen(key) == 1
    assert (await a.get(server.url("/f")))[1] == b"two"
    await a.settle()
    assert client.hlen(key) == 0
    client.close()


async def test_clear_forgets_every_response_under_the_prefix(
    make: Any, server: MockServer, redis_url: str
) -> None:
    server.cacheable("/c", b"c", cache_control="max-age=60")
    a = make(l1=4)
    await a.get(server.url("/c"))
    await a.settle()
    client = redis.Redis.from_url(redis_url)
    client.set("other:key", 1)
    await a.cache.clear()
    assert client.keys("*") == [b"other:key"]
    client.close()
    await a.get(server.url("/c"))
    assert server.count("/c") == 2


async def test_a_stale_while_revalidate_refresh_is_shared(
    make: Any, server: MockServer
) -> None:
    resource = server.cacheable("/w", b"v1", cache_control="max-age=1, stale-while-revalidate=30")
    a, b = make(), make()
    await a.get(server.url("/w"))
    await a.settle()
    resource.update(body=b"v2")
    await asyncio.sleep(1.1)
    assert (await b.get(server.url("/w")))[1] == b"v1"  # stale, refreshed in the background
    await b.settle()
    assert "cache.served_stale" in names(b)
    assert (await a.get(server.url("/w")))[1] == b"v2"  # the other process's refresh
    assert server.count("/w") == 2
