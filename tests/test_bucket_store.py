"""The in-process bucket store: get-or-create by key, bounded by dropping idle buckets."""

from __future__ import annotations

import pytest

from resilient_http._bucket import TokenBucket
from resilient_http._bucket_store import BucketStore, MemoryStore


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
