"""RedisStore: configuration, key naming, scripts, bounded calls and the health machine,
against a real server (tests/_redis.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ResponseError

import resilient_http as rh
from resilient_http.redis.store import hash_tag
from tests._redis import RedisServer

SLACK = 0.25  # scheduling slack on a shared 2-core machine, seconds


def events() -> tuple[list[rh.Event], Any]:
    seen: list[rh.Event] = []
    return seen, seen.append


async def wait_for_event(seen: list[rh.Event], name: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not any(e.name == name for e in seen):
        assert time.monotonic() < deadline, f"no {name} within {within} s: {seen}"
        await asyncio.sleep(0.02)


# -- import and configuration -------------------------------------------------------------


def test_importing_the_package_does_not_import_redis() -> None:
    code = (
        "import sys, resilient_http as rh\n"
        "assert 'redis' not in sys.modules, 'redis imported by resilient_http'\n"
        "assert rh.RedisStore.__name__ == 'RedisStore'\n"
        "assert 'redis' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_public_name_is_the_class() -> None:
    from resilient_http.redis import RedisStore

    assert rh.RedisStore is RedisStore
    assert "RedisStore" in rh.__all__
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = rh.NoSuchThing  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prefix": ""}, ValueError, "prefix"),
        ({"prefix": "a{b}"}, ValueError, "prefix"),
        ({"prefix": "a b"}, ValueError, "prefix"),
        ({"prefix": 3}, TypeError, "prefix"),
        ({"on_error": "ignore"}, ValueError, "on_error.*'ignore'"),
        ({"socket_timeout": 0}, ValueError, "socket_timeout"),
        ({"socket_timeout": 61}, ValueError, "socket_timeout"),
        ({"socket_timeout": "1"}, TypeError, "socket_timeout"),
        ({"processes": 0}, ValueError, "processes"),
        ({"processes": 1.5}, TypeError, "processes"),
        ({"on_event": 3}, TypeError, "on_event"),
    ],
)
def test_configuration_is_validated(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        rh.RedisStore("redis://127.0.0.1:1/0", **kwargs)


def test_a_synchronous_client_is_refused() -> None:
    with pytest.raises(TypeError, match=r"url_or_client.*synchronous"):
        rh.RedisStore(redis.Redis())  # type: ignore[arg-type]


def test_defaults() -> None:
    store = rh.RedisStore("redis://127.0.0.1:1/0")
    assert (store.prefix, store.on_error, store.socket_timeout, store.processes) == (
        "rh", "local", 0.1, 1
    )
    assert store.healthy
    assert repr(store) == "RedisStore(prefix='rh', on_error='local')"


# -- keys ---------------------------------------------------------------------------------


def test_keys_are_namespaced_and_hash_tagged() -> None:
    store = rh.RedisStore("redis://127.0.0.1:1/0", prefix="app")
    assert store.key("ratelimit", "https://api.example.com:443") == (
        "app:ratelimit:{https://api.example.com:443}"
    )
    assert store.key("cache", "k", "v1", "body") == "app:cache:{k}:v1:body"
    # every key of one logical key lands in one Cluster slot
    slots = {key_slot(store.key("cache", "k", part).encode()) for part in ("a", "b", "c")}
    assert len(slots) == 1
    with pytest.raises(ValueError, match="layer"):
        store.key("Bad Layer", "k")


@pytest.mark.parametrize("name", ["", "a}b", "{x}", "#abc", "x" * 201])
def test_unsafe_names_are_hashed_into_the_tag(name: str) -> None:
    tag = hash_tag(name)
    assert tag.startswith("#") and len(tag) == 33
    assert "{" not in tag and "}" not in tag
    assert hash_tag(name + "!") != tag


# -- against the server -------------------------------------------------------------------


async def test_scripts_run_by_evalsha_and_reload_after_script_flush(redis_url: str) -> None:
    async with rh.RedisStore(redis_url) as store:
        before = time.time()
        micros = await store.server_time()
        assert isinstance(micros, int)
        assert abs(micros / 1e6 - before) < 5.0
        await store.call(store.client.script_flush)
        assert await store.server_time() >= micros  # NOSCRIPT, loaded again
        assert store.healthy


async def test_a_script_error_is_raised_and_does_not_degrade(redis_url: str) -> None:
    seen, hook = events()
    async with rh.RedisStore(redis_url, on_event=hook) as store:
        with pytest.raises(ResponseError):
            await store.call(store.client.eval, "return redis.call('nosuchcommand')", 0)
        assert store.healthy
        assert seen == []


async def test_a_server_refusing_writes_degrades_the_store(redis_url: str) -> None:
    seen, hook = events()
    async with rh.RedisStore(redis_url, on_event=hook) as store:
        await store.call(store.client.set, "filler", "x" * 10_000)
        await store.call(store.client.config_set, "maxmemory", 1)  # noeviction: OOM on writes
        with pytest.raises(rh.StoreUnavailable) as info:
            await store.call(store.client.set, "k", "v")
        assert "maxmemory" in str(info.value.__cause__)
        assert not store.healthy
        assert [e.name for e in seen] == ["store.degraded"]
        assert seen[0].layer == "RedisStore" and seen[0].detail["on_error"] == "local"


async def test_a_client_passed_in_is_not_closed(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with rh.RedisStore(client) as store:
            assert store.client is client
            await store.server_time()
        assert await client.ping()
    finally:
        await client.aclose()


# -- faults -------------------------------------------------------------------------------


async def test_killed_then_restarted_degrades_then_recovers(redis_proc: RedisServer) -> None:
    seen, hook = events()
    async with rh.RedisStore(redis_proc.url, on_event=hook, socket_timeout=0.1) as store:
        await store.server_time()
        redis_proc.kill()
        started = time.monotonic()
        with pytest.raises(rh.StoreUnavailable):
            await store.server_time()
        assert time.monotonic() - started < 0.1 + SLACK
        assert not store.healthy
        # while degraded, calls fail at once without touching the network
        started = time.monotonic()
        for _ in range(100):
            with pytest.raises(rh.StoreUnavailable, match="degraded"):
                await store.server_time()
        assert time.monotonic() - started < 0.05
        redis_proc.restart()
        await wait_for_event(seen, "store.recovered", within=1.0 + 1.0 + SLACK)
        assert store.healthy
        assert await store.server_time() > 0
    assert [e.name for e in seen] == ["store.degraded", "store.recovered"]
    assert seen[1].detail["seconds"] > 0


async def test_a_paused_server_times_out_within_the_socket_timeout(
    redis_proc: RedisServer,
) -> None:
    seen, hook = events()
    async with rh.RedisStore(redis_proc.url, on_event=hook, socket_timeout=0.1) as store:
        await store.server_time()
        redis_proc.pause()
        try:
            started = time.monotonic()
            with pytest.raises(rh.StoreUnavailable) as info:
                await store.server_time()
            assert time.monotonic() - started < 0.1 + SLACK
            timeouts = (TimeoutError, asyncio.TimeoutError, redis.exceptions.TimeoutError)
            assert isinstance(info.value.__cause__, timeouts)  # the client's or the store's
            assert [e.name for e in seen] == ["store.degraded"]
            await asyncio.sleep(1.2)  # the probe tries, times out too, and keeps trying
            assert not store.healthy
        finally:
            redis_proc.resume()
        await wait_for_event(seen, "store.recovered", within=1.0 + 0.1 + SLACK)
        assert await store.server_time() > 0


async def test_the_probe_runs_again_on_a_new_event_loop(redis_proc: RedisServer) -> None:
    store = rh.RedisStore(redis_proc.url)
    redis_proc.kill()

    async def fail_once() -> None:
        with pytest.raises(rh.StoreUnavailable):
            await store.server_time()

    # The loop that found the store degraded ends (its probe is cancelled with it).
    await asyncio.to_thread(asyncio.run, fail_once())
    assert not store.healthy
    redis_proc.restart()
    with pytest.raises(rh.StoreUnavailable):  # still degraded: this call starts a new probe
        await store.server_time()
    deadline = time.monotonic() + 1.0 + 1.0 + SLACK
    while not store.healthy:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await store.aclose()
