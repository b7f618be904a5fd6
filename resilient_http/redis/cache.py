"""``RedisCacheStore``: the responses of ``Cache`` kept in Redis, shared by every process.

``Cache(store=redis_store)`` wraps a :class:`~resilient_http.RedisStore` in one of these with
the defaults; build one yourself for an L1 or other limits::

    shared = RedisCacheStore(redis_store, l1=256)
    cache = rh.Cache(ttl=60, store=shared)

Layout: the variants of one cache key live in one hash, ``{prefix}:cache:{{key}}``, one field
per variant (a digest of its method, owner and ``Vary`` values), each an entry in the
format of :mod:`resilient_http.redis._entry_codec`. Storing a response writes its one field
(``HSET``, in ``cache_put.lua``): two processes storing two variants never overwrite each
other. The hash's TTL covers the longest-lived variant in it (freshness left, plus the
longer of its stale-if-error and stale-while-revalidate windows, plus ``keep_stale`` when it
has a validator to revalidate with).

Single flight across processes: a miss first waits for this process's own flight (as with
any store), then its leader claims ``{prefix}:cache:{{key}}:lock:{owner}`` (``SET ... PX
lock_ttl`` when absent, ``cache_claim.lua``). The process that claims it goes upstream; the
others ask again 5 ms later, then at doubling intervals up to 100 ms, until its response
lands (the lock turns into a short "landed" mark, in the same script that stores the
entry) and they answer from the hash, or ``lock_ttl`` passes (a dead process) and they go
upstream themselves.

L1 (``l1`` > 0): the variants of recently read keys, in memory. An L1 hit costs no round
trip and no ``await``. A key stays there ``l1_ttl`` seconds from when it was read (default
1 s): another process's new response or invalidation is seen at most that late here; this
process's own writes and invalidations update it at once. A key none of whose variants is
fresh is not kept (it is about to be revalidated, and another process may have done it).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from resilient_http._clock import LOOP_CLOCK, Clock, LoopClock
from resilient_http._rfc9111 import Entry
from resilient_http._store import MemoryStore, Variants, replaced
from resilient_http._validate import duration, positive_int
from resilient_http.errors import StoreUnavailable
from resilient_http.redis._entry_codec import decode, encode, variant_field
from resilient_http.redis._l1 import L1
from resilient_http.redis.store import RedisStore

__all__ = ["RedisCacheStore"]

_LAYER = "cache"
_LANDED_MS = 1000  # how long a landed flight's mark lives: the waiters' next poll reads it


class RedisCacheStore:
    """A :class:`~resilient_http.cache.CacheStore` in Redis, with an optional in-memory L1.

    Args:
        store: the :class:`~resilient_http.RedisStore` (connection, prefix, ``on_error``).
        l1: how many keys the in-memory L1 keeps (least recently used first out). Default 0:
            no L1, every lookup is one round trip.
        l1_bytes: the most bytes the L1 keeps (as ``MemoryStore`` counts them). Default
            8 MiB.
        l1_ttl: seconds a key read from Redis is answered from the L1 (> 0). Default 1.0.
        max_entry_bytes: the largest entry stored, encoded, in bytes; the ``Cache`` using
            this store neither stores nor buffers a larger response. Default 1 MiB.
        lock_ttl: seconds one process may hold a missing key's fetch for the fleet, and the
            longest the others wait for it before going upstream themselves (> 0). Default
            10.
        keep_stale: seconds an expired entry with an ``ETag`` or ``Last-Modified`` is kept
            past its stale windows, to be revalidated (>= 0). Default 300.
        local: the in-process store used while Redis is unavailable with
            ``on_error="local"``. Default a ``MemoryStore()``.
        clock: the clock of the entries' times; default the clock of the ``Cache`` it is
            given to (the event loop's clock). Times are stored as wall-clock seconds.

    While Redis is unavailable (the store's ``on_error``): ``"local"`` reads and writes
    ``local``; ``"open"`` answers every lookup as a miss and stores nothing; ``"closed"``
    raises :class:`~resilient_http.StoreUnavailable` from the request (writes and
    invalidations, which run in the background, are dropped). No call waits longer than the
    store's ``socket_timeout``.
    """

    __slots__ = (
        "redis", "l1", "l1_bytes", "l1_ttl", "max_entry_bytes", "lock_ttl", "keep_stale",
        "local", "clock", "_l1", "_locks", "_now", "_fixed",
    )

    def __init__(
        self,
        store: RedisStore,
        *,
        l1: int = 0,
        l1_bytes: int = 8 * 2**20,
        l1_ttl: float = 1.0,
        max_entry_bytes: int = 2**20,
        lock_ttl: float = 10.0,
        keep_stale: float = 300.0,
        local: MemoryStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore, got {type(store).__name__} {store!r}")
        if isinstance(l1, bool) or not isinstance(l1, int) or l1 < 0:
            raise (TypeError if not isinstance(l1, int) else ValueError)(
                f"l1 must be an int >= 0 (keys kept in memory), got {l1!r}"
            )
        self.redis = store
        self.l1 = l1
        self.l1_bytes = positive_int("l1_bytes", l1_bytes)
        self.l1_ttl = duration("l1_ttl", l1_ttl)
        self.max_entry_bytes = positive_int("max_entry_bytes", max_entry_bytes)
        self.lock_ttl = duration("lock_ttl", lock_ttl)
        self.keep_stale = duration("keep_stale", keep_stale, allow_zero=True)
        if local is not None and not isinstance(local, MemoryStore):
            raise TypeError(f"local must be a MemoryStore, got {type(local).__name__}")
        self.local = local if local is not None else MemoryStore()
        self._l1 = L1(l1, self.l1_bytes) if l1 else None
        self._locks: dict[tuple[str, str | None], str] = {}
        self.clock: Clock | None = None
        self._now: Callable[[], float] = LOOP_CLOCK.now
        self._fixed: float | None = None
        if clock is not None:
            self.bind(clock)

    def bind(self, clock: Clock) -> None:
        """Use ``clock`` for the entries' times unless a clock was given (``Cache`` calls
        it). The wall-clock offset of the event loop's clock is read at each conversion;
        another clock's (a ``FakeClock``) is fixed now, so its time maps onto a wall clock
        that moves with it."""
        if self.clock is not None:
            return
        self.clock = clock
        self._now = clock.now
        self._fixed = None if isinstance(clock, LoopClock) else time.time() - clock.now()

    def _offset(self) -> float:
        fixed = self._fixed
        return time.time() - self._now() if fixed is None else fixed

    # ------------------------------------------------------------------ reading

    def get(self, key: str) -> Variants | Awaitable[Variants | None] | None:
        """The variants stored under ``key``: from the L1 at once, else from Redis."""
        l1 = self._l1
        if l1 is not None:
            held = l1.get(key, self._now())
            if held is not None:
                return held
        return self._fetch(key)

    async def _fetch(self, key: str) -> Variants | None:
        store = self.redis
        try:
            fields = await store.call(store.client.hgetall, store.key(_LAYER, key))
        except StoreUnavailable:
            mode = store.on_error
            if mode == "closed":
                raise
            return self.local.get(key) if mode == "local" else None
        return self._variants(key, fields.values())

    def _variants(self, key: str, blobs: Any) -> Variants | None:
        offset = self._offset()
        found = tuple(e for e in (decode(b, offset) for b in blobs) if e is not None)
        l1 = self._l1
        if l1 is not None:
            now = self._now()
            if any(now < e.fresh_until and not e.no_cache for e in found):
                l1.keep(key, found, now + self.l1_ttl)
            else:
                l1.drop(key)
        return found or None

    # ------------------------------------------------------------------ single flight

    async def claim(self, key: str, owner: str | None) -> Variants | None:
        """Wait for the fleet's fetch of ``key`` for ``owner``: ``None`` when this process
        is to go upstream (it claimed the fetch, or the wait ended), else the variants the
        fetch stored (which may not fit the request)."""
        store = self.redis
        keys = (store.key(_LAYER, key), store.key(_LAYER, key, "lock", owner or "-"))
        token = secrets.token_hex(8)
        args = (token, max(1, int(self.lock_ttl * 1000)))
        clock = self.clock or LOOP_CLOCK
        deadline = self._now() + self.lock_ttl
        pause = 0.005
        while True:
            try:
                reply = await store.run("cache_claim", keys, args)
            except StoreUnavailable:
                if store.on_error == "closed":
                    raise
                return None
            state = int(reply[0])
            if state == 1:
                self._locks[(key, owner)] = token
                return None
            if state == 2:
                return self._variants(key, reply[1][1::2])
            if self._now() + pause > deadline:
                return None
            await clock.sleep(pause)
            pause = min(pause * 2, 0.1)

    def release(self, key: str, owner: str | None) -> Awaitable[None] | None:
        """End this process's fetch of ``key`` for ``owner`` that stored nothing (the
        waiting processes then go upstream themselves); ``None`` if it holds none."""
        token = self._locks.pop((key, owner), None)
        if token is None:
            return None
        return self._write(key, owner, b"", b"", 0, b"", token)

    # ------------------------------------------------------------------ writing

    def add(self, key: str, entry: Entry, old: Entry | None) -> Awaitable[None] | None:
        """Store ``entry`` as its variant of ``key`` (replacing ``old``'s too): one field."""
        token = self._locks.pop((key, entry.owner), None) or ""
        now = self._now()
        keep = max(entry.stale_if_error, entry.stale_while_revalidate)
        if entry.etag is not None or entry.last_modified is not None:
            keep += self.keep_stale
        ttl_ms = int((max(0.0, entry.fresh_until - now) + keep) * 1000)
        blob = encode(entry, self._offset())
        if ttl_ms <= 0 or blob is None or len(blob) > self.max_entry_bytes:
            return self._write(key, entry.owner, b"", b"", 0, b"", token) if token else None
        if self._l1 is not None:
            self._l1.update(key, entry, old)
        gone = b"" if old is None else variant_field(old)
        return self._write(key, entry.owner, variant_field(entry), blob, ttl_ms, gone, token,
                           entry, old)

    async def _write(
        self, key: str, owner: str | None, field: bytes, blob: bytes, ttl_ms: int,
        gone: bytes, token: str, entry: Entry | None = None, old: Entry | None = None,
    ) -> None:
        store = self.redis
        keys = (store.key(_LAYER, key), store.key(_LAYER, key, "lock", owner or "-"))
        try:
            await store.run("cache_put", keys, (field, blob, ttl_ms, gone, token, _LANDED_MS))
        except StoreUnavailable:
            if entry is not None and store.on_error == "local":
                self.local.set(key, replaced(self.local.get(key), entry, old))

    def discard(self, key: str, entry: Entry) -> Awaitable[None] | None:
        """Drop ``entry``'s variant of ``key`` (its field)."""
        self._drop_local(key)
        store = self.redis
        return self._quietly(store.client.hdel, store.key(_LAYER, key), variant_field(entry))

    def set(self, key: str, variants: Variants) -> Awaitable[None] | None:
        """Replace every variant of ``key`` (the generic path; ``Cache`` uses :meth:`add`)."""
        self._drop_local(key)
        return self._replace(key, variants)

    async def _replace(self, key: str, variants: Variants) -> None:
        await self._quietly(self.redis.client.delete, self.redis.key(_LAYER, key))
        for entry in variants:
            done = self.add(key, entry, None)
            if done is not None:
                await done

    def delete(self, key: str) -> Awaitable[None] | None:
        """Forget ``key`` in Redis, the L1 and the local fallback (an invalidation)."""
        self._drop_local(key)
        return self._quietly(self.redis.client.delete, self.redis.key(_LAYER, key))

    def _drop_local(self, key: str) -> None:
        if self._l1 is not None:
            self._l1.drop(key)
        self.local.delete(key)

    async def _quietly(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """A background write: an unavailable store drops it (nobody waits for it)."""
        with contextlib.suppress(StoreUnavailable):
            await self.redis.call(fn, *args)

    async def clear(self) -> None:
        """Forget every cached response under this store's prefix (``SCAN`` + ``UNLINK``),
        and the L1 and local ones."""
        if self._l1 is not None:
            self._l1.clear()
        self.local.clear()
        store = self.redis
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in store.prefix)
        pattern += f":{_LAYER}:*"
        cursor: Any = 0
        while True:
            cursor, found = await store.call(store.client.scan, cursor, pattern, 1000)
            if found:
                await store.call(store.client.unlink, *found)
            if not int(cursor):
                return

    def __repr__(self) -> str:
        return f"RedisCacheStore({self.redis!r}, l1={self.l1})"
