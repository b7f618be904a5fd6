"""MemoryStore: LRU bounded by responses and bytes, with exact accounting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_http._rfc9111 import Entry, Policy, RequestFacts, make_entry
from resilient_http._store import CacheStore, MemoryStore


def entry(size: int) -> Entry:
    return make_entry(
        Policy(), RequestFacts(), status=200, reason="OK", headers=(), body=b"x" * size,
        vary=(), request_time=0.0, response_time=0.0, wall=0.0,
    )


def test_is_a_cache_store() -> None:
    assert isinstance(MemoryStore(), CacheStore)


def test_get_set_delete_clear() -> None:
    store = MemoryStore()
    a, b = entry(10), entry(20)
    store.set("k", (a, b))
    assert store.get("k") == (a, b)
    assert (store.count, store.size, len(store)) == (2, a.size + b.size, 1)
    store.set("k", (b,))  # replacing keeps the accounting exact
    assert (store.count, store.size) == (1, b.size)
    store.delete("k")
    store.delete("absent")
    assert (store.count, store.size, store.get("k")) == (0, 0, None)
    store.set("k", (a,))
    store.clear()
    assert (store.count, store.size) == (0, 0)


def test_least_recently_used_goes_first() -> None:
    store = MemoryStore(maxsize=2)
    store.set("a", (entry(1),))
    store.set("b", (entry(1),))
    store.get("a")
    store.set("c", (entry(1),))
    assert store.get("b") is None and store.get("a") is not None


def test_too_large_is_not_stored() -> None:
    store = MemoryStore(max_bytes=1000)
    store.set("k", (entry(5000),))
    assert store.get("k") is None and store.count == 0


@pytest.mark.parametrize(("kwargs", "error"), [({"maxsize": 0}, ValueError),
                                               ({"max_bytes": "1"}, TypeError)])
def test_validation(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        MemoryStore(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3), st.integers(0, 3000)),
                max_size=60))
def test_bounds_always_hold(ops: list[tuple[int, int, int]]) -> None:
    store = MemoryStore(maxsize=7, max_bytes=8000)
    for key, variants, size in ops:
        if variants == 0:
            store.delete(str(key))
        else:
            store.set(str(key), tuple(entry(size) for _ in range(variants)))
        assert store.count <= 7
        assert store.size <= 8000
        held = [store._data[k] for k in list(store._data.keys())]
        assert store.count == sum(len(v) for v in held)
        assert store.size == sum(e.size for v in held for e in v)
