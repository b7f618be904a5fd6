"""The Redis client a :class:`~resilient_http.RedisStore` talks through: how one is built from
a URL, how a call is bounded, and which errors mean an outage (as opposed to a bug)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from resilient_http._validate import show

__all__ = ["POOL_SIZE", "bounded", "client_from_url", "is_outage"]

T = TypeVar("T")

POOL_SIZE = 4
"""Connections of a client built from a URL (per process)."""

# Server answers that mean "not available now" rather than "your script is wrong".
_OUTAGE_REPLIES = (
    "OOM", "BUSY", "LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN",
    "NOREPLICAS", "MISCONF",
)
# The same, as redis-py's classes (which strip the reply's prefix from the message).
_OUTAGE_ERRORS = (OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterError)
# No CLIENT SETINFO on connect: two round trips less per new connection, which is what a
# cold process's first calls wait for (8 processes starting at once on 2 cores: the slowest
# first call 58-96 ms with it, 38-57 ms without; the socket timeout is 100 ms).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}  # redis-py >= 7.1; lib_name/lib_version are deprecated there
    if "driver_info" in inspect.signature(AbstractConnection.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


def client_from_url(url: str, timeout: float) -> aioredis.Redis:
    """A client for ``url`` whose socket and connect timeouts are ``timeout`` seconds, with no
    retries of its own and a few connections shared: a burst of callers waits a moment for
    one instead of opening one each (a connection costs far more than a script call)."""
    try:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=None,  # the wait for a connection is inside the call's bound
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            **_NO_SETINFO,
        )
    except ValueError as exc:  # redis-py's words on a malformed URL
        raise ValueError(f"url_or_client: {exc} (got {show(url)})") from None
    return aioredis.Redis(connection_pool=pool)


if sys.version_info >= (3, 11):

    async def bounded(aw: Awaitable[T], seconds: float) -> T:
        """``await aw``, cancelled after ``seconds`` (``TimeoutError``)."""
        async with asyncio.timeout(seconds):
            return await aw

else:  # pragma: no cover - Python 3.10

    async def bounded(aw: Awaitable[T], seconds: float) -> T:
        """``await aw``, cancelled after ``seconds`` (``TimeoutError``)."""
        return await asyncio.wait_for(aw, seconds)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the server is unreachable, slow or refusing writes (as opposed
    to a bug in a script or a command)."""
    if isinstance(exc, ResponseError):
        return isinstance(exc, _OUTAGE_ERRORS) or str(exc).startswith(_OUTAGE_REPLIES)
    return isinstance(exc, (RedisError, OSError, asyncio.TimeoutError, TimeoutError))
