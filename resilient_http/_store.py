"""Where ``Cache`` keeps responses: a small store interface and the in-memory store.

A store maps a key (the request URL, or what ``Cache(key=...)`` returns) to the tuple of
stored responses for it (one per method, credentials and ``Vary`` values). Every method may
return its value directly or an awaitable of it: the in-memory store answers synchronously,
so a cache hit costs no ``await``; a networked store (Redis, ...) returns awaitables and the
cache awaits them.

A store may also offer ``add(key, entry, old)`` and ``discard(key, entry)`` (each returning
``None`` or an awaitable): :func:`put` and :func:`forget` then write that one variant instead
of reading the key's variants and writing them all back (a shared store's atomic
per-variant write, with no read-then-write race between processes).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from resilient_http._rfc9111 import Entry
from resilient_http._validate import positive_int, show

__all__ = ["CacheStore", "MemoryStore", "Variants", "store_for", "put", "forget", "replaced"]

Variants = tuple[Entry, ...]
"""The stored responses of one key."""


@runtime_checkable
class CacheStore(Protocol):
    """What ``Cache`` needs from a store. Each method returns its result or an awaitable."""

    def get(self, key: str) -> Variants | Awaitable[Variants | None] | None:
        """The responses stored under ``key``, or ``None``."""
        ...

    def set(self, key: str, variants: Variants) -> Awaitable[None] | None:
        """Store ``variants`` under ``key``, replacing what was there (may evict others)."""
        ...

    def delete(self, key: str) -> Awaitable[None] | None:
        """Forget ``key`` (no error when it is absent)."""
        ...

    def clear(self) -> Awaitable[None] | None:
        """Forget everything."""
        ...


def _size(variants: Variants) -> int:
    return sum(entry.size for entry in variants)


class MemoryStore:
    """In-memory, least-recently-used store, bounded by responses and by bytes.

    Args:
        maxsize: the most responses kept (each ``Vary`` variant counts). Default 1024.
        max_bytes: the most bytes kept (bodies plus headers plus a fixed overhead per
            response). Default 64 MiB. A response larger than this is not stored.
    """

    __slots__ = ("maxsize", "max_bytes", "_data", "_count", "_size")

    def __init__(self, maxsize: int = 1024, max_bytes: int = 64 * 2**20) -> None:
        self.maxsize = positive_int("maxsize", maxsize)
        self.max_bytes = positive_int("max_bytes", max_bytes)
        # Least recently used first. Never rebound: ``Cache`` reads a hit from it directly
        # (``get`` without the call: a dict look-up and ``move_to_end``).
        self._data: OrderedDict[str, Variants] = OrderedDict()
        self._count = 0
        self._size = 0

    def get(self, key: str) -> Variants | None:
        data = self._data
        found = data.get(key)
        if found is not None:
            data.move_to_end(key)
        return found

    def set(self, key: str, variants: Variants) -> None:
        self.delete(key)
        size = _size(variants)
        if not variants or size > self.max_bytes:
            return
        data = self._data
        data[key] = variants
        self._count += len(variants)
        self._size += size
        # Evict the least recently used keys past either bound (the new one last).
        while self._count > self.maxsize or self._size > self.max_bytes:
            _, old = data.popitem(last=False)
            self._count -= len(old)
            self._size -= _size(old)

    def delete(self, key: str) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._count -= len(old)
            self._size -= _size(old)

    def clear(self) -> None:
        self._data.clear()
        self._count = self._size = 0

    @property
    def count(self) -> int:
        """How many responses are stored."""
        return self._count

    @property
    def size(self) -> int:
        """How many bytes are stored (as counted against ``max_bytes``)."""
        return self._size

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return (
            f"MemoryStore(maxsize={self.maxsize}, max_bytes={self.max_bytes}, "
            f"count={self.count}, size={self.size})"
        )


def store_for(store: Any, maxsize: int, max_bytes: int) -> CacheStore:
    """The store of ``Cache(store=store)``: a new :class:`MemoryStore` for ``None``, a
    ``RedisCacheStore`` with its defaults for a ``RedisStore``, else ``store`` itself."""
    if store is None:
        return MemoryStore(maxsize, max_bytes)
    redis_module = sys.modules.get("resilient_http.redis.store")  # loaded if one exists
    if redis_module is not None and isinstance(store, redis_module.RedisStore):
        from resilient_http.redis.cache import RedisCacheStore

        return RedisCacheStore(store)
    if not isinstance(store, CacheStore):
        raise TypeError(
            f"store must be a CacheStore (get, set, delete, clear), got {show(store)}"
        )
    return store


Spawn = Callable[[Awaitable[Any]], Any]
"""Runs an awaitable in the background (a networked store's work; the cache owns the task)."""


def put(store: CacheStore, key: str, entry: Entry, old: Entry | None, spawn: Spawn) -> None:
    """Store ``entry`` under ``key``, dropping ``old`` and the variant ``entry`` replaces (same
    method, owner and ``Vary`` values); the other variants stay."""
    add = getattr(store, "add", None)
    if add is not None:
        done = add(key, entry, old)
        if done is not None:
            spawn(done)
        return
    found = store.get(key)
    if found is not None and not isinstance(found, tuple):
        spawn(_put_later(store, key, entry, old, found, spawn))
        return
    _put_now(store, key, entry, old, found, spawn)


async def _put_later(
    store: CacheStore, key: str, entry: Entry, old: Entry | None,
    found: Awaitable[Variants | None], spawn: Spawn,
) -> None:
    _put_now(store, key, entry, old, await found, spawn)


def _put_now(
    store: CacheStore, key: str, entry: Entry, old: Entry | None, variants: Variants | None,
    spawn: Spawn,
) -> None:
    done = store.set(key, replaced(variants, entry, old))
    if done is not None:
        spawn(done)


def replaced(variants: Variants | None, entry: Entry, old: Entry | None) -> Variants:
    """``variants`` with ``entry`` first, instead of ``old`` and of the variant it replaces
    (same method, owner and ``Vary`` values)."""
    kept = tuple(
        e for e in variants or ()
        if e is not old
        and not (e.method == entry.method and e.owner == entry.owner and e.vary == entry.vary)
    )
    return (entry, *kept)


def forget(store: CacheStore, key: str, entry: Entry, spawn: Spawn) -> None:
    """Drop ``entry`` from the variants stored under ``key`` (of a synchronous store, or one
    with ``discard``; another asynchronous store's lookup is only awaited, not acted on)."""
    discard = getattr(store, "discard", None)
    if discard is not None:
        done = discard(key, entry)
        if done is not None:
            spawn(done)
        return
    found = store.get(key)
    if found is None or not isinstance(found, tuple):
        if found is not None:
            spawn(_close_awaitable(found))
        return
    kept = tuple(e for e in found if e is not entry)
    done = store.set(key, kept) if kept else store.delete(key)
    if done is not None:
        spawn(done)


async def _close_awaitable(aw: Awaitable[Any]) -> None:
    await aw
