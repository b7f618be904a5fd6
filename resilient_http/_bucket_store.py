"""Where rate-limit bucket state lives, by key: the store interface and the in-process store.

The queue of waiters stays local to the process (in the layer); only the token arithmetic
(:class:`~resilient_http._bucket.TokenBucket`) sits behind the store, so a shared store
(Redis, for many processes) can be added later without touching the layer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol, runtime_checkable

from resilient_http._bucket import TokenBucket
from resilient_http._validate import positive_int

__all__ = ["BucketStore", "MemoryStore", "evict"]


@runtime_checkable
class BucketStore(Protocol):
    """Where bucket state lives, by key. The default :class:`MemoryStore` keeps it in this
    process; a shared store (e.g. Redis) returns objects with the same methods as
    :class:`~resilient_http._bucket.TokenBucket` backed by the shared state."""

    def bucket(
        self, key: Hashable, now: float, make: Callable[[float], TokenBucket]
    ) -> TokenBucket:
        """The bucket of ``key``, created with ``make(now)`` if there is none."""
        ...


class MemoryStore:
    """In-process bucket store, bounded: past ``max_keys`` buckets, idle ones (full, at their
    configured rate: indistinguishable from new) are dropped, oldest first.

    Share one between ``RateLimit`` layers of the same configuration to share their buckets.

    Args:
        max_keys: how many buckets to keep before dropping idle ones. Default 10 000.
    """

    __slots__ = ("max_keys", "_buckets")

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = positive_int("max_keys", max_keys)
        self._buckets: dict[Hashable, TokenBucket] = {}

    def bucket(
        self, key: Hashable, now: float, make: Callable[[float], TokenBucket]
    ) -> TokenBucket:
        buckets = self._buckets
        found = buckets.get(key)
        if found is None:
            if len(buckets) >= self.max_keys:
                evict(buckets, self.max_keys, lambda b: b.is_idle(now))
            found = buckets[key] = make(now)
        return found

    def __len__(self) -> int:
        return len(self._buckets)


def evict(table: dict[Any, Any], limit: int, idle: Callable[[Any], bool]) -> None:
    """Make room for one entry under ``limit``: drop the oldest idle entries (looking at the
    oldest 64 at most, so a table full of busy entries may stay over the limit)."""
    need = len(table) - limit + 1
    drop: list[Any] = []
    for n, (key, value) in enumerate(table.items()):
        if n >= 64 or len(drop) >= need:
            break
        if idle(value):
            drop.append(key)
    for key in drop:
        del table[key]
