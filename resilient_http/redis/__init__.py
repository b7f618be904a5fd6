"""Shared state on Redis or Valkey: :class:`RedisStore` (the ``[redis]`` extra).

Pass one store as ``store=`` to the layers that keep state, and every process using the same
server (and ``prefix``) shares it::

    store = rh.RedisStore("redis://cache:6379/0", prefix="myapp")
    rate = rh.RateLimit(100, store=store)        # 100/s across the fleet

``import resilient_http`` never imports this package (nor ``redis``): ``rh.RedisStore`` is
loaded on first use.

For the layers built on it, the store provides (see :mod:`resilient_http.redis.store`):

Keys
    :meth:`RedisStore.key` names every key ``{prefix}:{layer}:{{tag}}[:part...]``. The
    logical key (a host, a cache key) is the hash tag, so every key a script touches for one
    logical key lives in one slot: the scripts run unchanged on Redis Cluster. Every key a
    layer writes carries a TTL, so an idle fleet leaves nothing behind.
Scripts
    Lua files beside this module (``ratelimit.lua``...), loaded by :meth:`RedisStore.script`
    and run by :meth:`RedisStore.run` with ``EVALSHA``, reloaded on ``NOSCRIPT`` (a restarted
    server, ``SCRIPT FLUSH``). Scripts read the time with ``TIME`` (the only clock shared by
    the fleet), in integer microseconds.
Bounded calls
    :meth:`RedisStore.run` and :meth:`RedisStore.call` never take longer than
    ``socket_timeout``: no request ever hangs on Redis.
Health
    A failed or timed-out call marks the store *degraded* (event ``store.degraded``) and
    raises :class:`~resilient_http.StoreUnavailable`; while degraded, calls fail at once
    without touching the network, and one background task pings the server at most every
    second until it answers (event ``store.recovered``). A layer catching
    ``StoreUnavailable`` applies the store's ``on_error``: ``"local"`` (its in-process state;
    a rate limit divides its rate by ``processes``), ``"open"`` (let the request through),
    ``"closed"`` (re-raise: the caller gets ``StoreUnavailable``).
"""

from __future__ import annotations

try:
    import redis.asyncio  # noqa: F401  (fail here, with the hint below, if it is missing)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "RedisStore needs the redis client: pip install 'resilient-http[redis]'"
    ) from exc

from resilient_http.redis.cache import RedisCacheStore
from resilient_http.redis.store import ON_ERROR, RedisStore

__all__ = ["RedisStore", "RedisCacheStore", "ON_ERROR"]
