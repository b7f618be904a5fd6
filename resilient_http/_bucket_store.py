"""Where rate-limit bucket state lives, by key: the two kinds of store, and the in-process one.

The queue of waiters, priorities and FIFO order stay local to the process (in the layer);
only the token arithmetic sits behind a store. Two kinds, so the common case keeps a
synchronous fast path and a networked store is not forced into it:

:class:`BucketStore` (in-process, synchronous)
    hands out :class:`~resilient_http._bucket.TokenBucket` objects; the layer takes a free
    token without an ``await``. :class:`MemoryStore` is the default.
:class:`SharedStore` (many processes, awaited)
    hands out a :class:`SharedBuckets` for one layer's configuration: one awaited call per
    permit reserves the next slot on the shared clock and says how long to wait (refusing,
    without reserving, a wait past the bound), and one per adapting response applies what
    the server said for everyone. ``rh.RedisStore`` is one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable

from resilient_http._bucket import TokenBucket
from resilient_http._ratelimit_headers import Limits
from resilient_http._validate import positive_int, show

__all__ = [
    "BucketStore",
    "MemoryStore",
    "SharedStore",
    "SharedBuckets",
    "BucketSpec",
    "Adapted",
    "evict",
    "is_shared",
]


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


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One ``RateLimit``'s bucket configuration, as a shared store needs it.

    Attributes:
        rate: the configured rate, permits per second.
        burst: the configured capacity, permits.
        recovery: seconds an adapted rate takes to climb from zero back to ``rate``.
        max_pause: the longest pause a server's headers can impose, seconds (the rate never
            drops below one permit per ``max_pause`` either).
    """

    rate: float
    burst: float
    recovery: float
    max_pause: float


@dataclass(frozen=True, slots=True)
class Adapted:
    """What one response changed in a shared bucket: ``reason`` as
    :func:`~resilient_http._bucket.adapt` returns it (``""``: nothing), the ``pause`` imposed
    (seconds, 0 for none), and the rate before and after (permits per second)."""

    reason: str
    pause: float
    old_rate: float
    new_rate: float


class SharedBuckets(Protocol):
    """The buckets of one layer configuration in a :class:`SharedStore`. Both calls are
    bounded in time and raise :class:`~resilient_http.StoreUnavailable` when the store
    cannot answer (the layer then applies the store's ``on_error``)."""

    def name(self, key: Hashable) -> str:
        """The store's name for the bucket of ``key`` (computed once per key)."""
        ...

    async def reserve(self, name: str, bound: float | None) -> tuple[bool, float]:
        """Reserve the next permit of bucket ``name``: ``(True, wait)``, the seconds to wait
        before using it (0: now), or ``(False, wait)`` when that wait would exceed ``bound``
        seconds (nothing is reserved then). ``bound=None``: no bound."""
        ...

    async def adapt(self, name: str, limits: Limits, status: int, in_flight: int) -> Adapted:
        """Apply what a response said (the rules of :func:`~resilient_http._bucket.adapt`)
        to bucket ``name`` for every process sharing it."""
        ...


@runtime_checkable
class SharedStore(Protocol):
    """A store shared by many processes (e.g. ``rh.RedisStore``).

    Attributes:
        on_error: ``"local"``, ``"open"`` or ``"closed"``: what a layer does when the store
            cannot answer.
        processes: how many processes share it (the ``"local"`` fallback divides the rate).
    """

    on_error: str
    processes: int

    def rate_buckets(self, spec: BucketSpec) -> SharedBuckets:
        """The shared buckets of a ``RateLimit`` configured as ``spec``."""
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


def is_shared(store: object) -> TypeGuard[SharedStore]:
    """Whether a layer's ``store`` is a :class:`SharedStore` rather than a
    :class:`BucketStore`; ``TypeError`` naming the parameter when it is neither."""
    if isinstance(store, BucketStore):
        return False
    if isinstance(store, SharedStore):
        return True
    raise TypeError(
        "store must be a BucketStore (a bucket() method) or a shared store such as "
        f"rh.RedisStore (a rate_buckets() method), got {show(store)}"
    )


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
