"""The in-process bucket store: get-or-create by key, bounded by dropping idle buckets; and
a store's own bucket class used by ``RateLimit``."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest

import resilient_http as rh
from resilient_http._bucket import TokenBucket
from resilient_http._bucket_store import BucketStore, MemoryStore
from resilient_http.testing import FakeClock


def make(now: float) -> TokenBucket:
    return TokenBucket(10.0, 10.0, now, 10.0)


def test_get_or_create_by_key() -> None:
    store = MemoryStore()
    assert isinstance(store, BucketStore)
    a = store.bucket("a", 0.0, make)
    assert store.bucket("a", 5.0, make) is a
    assert store.bucket("b", 0.0, make) is not a
    assert len(store) == 2


def test_only_idle_buckets_are_dropped_oldest_first() -> None:
    store = MemoryStore(max_keys=2)
    busy = store.bucket("busy", 0.0, make)
    busy.try_take(0.0)
    store.bucket("idle", 0.0, make)
    store.bucket("new", 0.0, make)  # over the bound: the idle one goes, the busy one stays
    assert store.bucket("busy", 0.0, make) is busy
    assert len(store) == 2
    store.bucket("newer", 0.0, make)  # "new" is full (idle): it goes, "busy" stays
    assert store.bucket("busy", 0.0, make) is busy


def test_max_keys_is_validated() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryStore(max_keys=0)


class CountedBucket(TokenBucket):
    """A store's own bucket class: ``RateLimit`` must take its tokens through its
    ``try_take`` (only a plain ``TokenBucket``'s arithmetic is written out in ``enter``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken = 0

    def try_take(self, now: float) -> bool:
        took = super().try_take(now)
        self.taken += took
        return took


class CountedStore:
    def __init__(self) -> None:
        self.buckets: dict[Hashable, CountedBucket] = {}

    def bucket(
        self, key: Hashable, now: float, make: Callable[[float], TokenBucket]
    ) -> TokenBucket:
        if key not in self.buckets:
            made = make(now)
            self.buckets[key] = CountedBucket(made.base, made.burst, now, 10.0)
        return self.buckets[key]


async def test_a_stores_own_bucket_class_takes_every_token() -> None:
    clock = FakeClock()
    store = CountedStore()
    rl = rh.RateLimit(100, clock=clock, store=store)

    @rh.resilient(rl)
    async def call() -> None:
        pass

    for _ in range(3):
        await clock.advance(0.5)  # time has passed, the bucket is at its configured rate
        await call()
    assert store.buckets[None].taken == 3
    assert rl.bucket(None) is store.buckets[None]
