"""The L1 of ``RedisCacheStore``: recently read keys' variants in memory, each until a
deadline on the layer's clock, bounded by keys and by bytes (least recently used out)."""

from __future__ import annotations

from cachetools import LRUCache

from resilient_http._rfc9111 import Entry
from resilient_http._store import Variants, replaced

__all__ = ["L1"]


def _size(value: tuple[float, Variants]) -> int:
    return sum(entry.size for entry in value[1])


class L1:
    """At most ``keys`` keys and ``max_bytes`` bytes (as ``MemoryStore`` counts them)."""

    __slots__ = ("keys", "max_bytes", "_data")

    def __init__(self, keys: int, max_bytes: int) -> None:
        self.keys = keys
        self.max_bytes = max_bytes
        self._data: LRUCache[str, tuple[float, Variants]] = LRUCache(max_bytes, getsizeof=_size)

    def get(self, key: str, now: float) -> Variants | None:
        """The variants of ``key`` if held and ``now`` is before their deadline."""
        held = self._data.get(key)
        return held[1] if held is not None and now < held[0] else None

    def keep(self, key: str, variants: Variants, until: float) -> None:
        """Hold ``variants`` for ``key`` until ``until`` (dropped if larger than the L1)."""
        data = self._data
        if _size((until, variants)) > self.max_bytes:
            data.pop(key, None)
            return
        data[key] = (until, variants)
        while len(data) > self.keys:
            data.popitem()

    def update(self, key: str, entry: Entry, old: Entry | None) -> None:
        """This process stored ``entry`` (instead of ``old``): update ``key`` if held."""
        held = self._data.get(key)
        if held is not None:
            self.keep(key, replaced(held[1], entry, old), held[0])

    def drop(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
