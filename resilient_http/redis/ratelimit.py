"""``RateLimit`` buckets on Redis: the client side of ``ratelimit.lua``.

One ``EVALSHA`` per permit: the script reads the server's ``TIME``, reserves the next slot
of the key's GCRA (the token bucket's arithmetic, as one timestamp) and returns the wait;
the layer sleeps exactly that, on its own clock. A wait past the caller's bound (``max_wait``,
the deadline) is refused without reserving anything. One more ``EVALSHA`` for a response
that carries rate-limit headers, which applies :func:`resilient_http._bucket.adapt`'s rules
on the server, so a pause or a lower rate holds for every process at once.

Differences from the in-process bucket (:class:`~resilient_http._bucket.TokenBucket`):

- Recovery: the rate climbs back by ``rate / recovery`` per second as in memory, but each
  reservation is spaced at the rate of the moment it is made (memory integrates the rate
  over the interval): the same within one interval.
- ``remaining - in_flight``: ``in_flight`` counts this process's requests only.
- A reset given as an epoch (``X-RateLimit-Reset``) becomes seconds on this process's
  clock before it reaches the server; ``Retry-After`` and every other duration are applied
  from the server's own ``TIME``.

Keys: ``{prefix}:ratelimit:{{<rate>/s,<burst>|<key>}}``, one short string per bucket (the
layer's rate and burst are part of the name, so differently configured layers never share a
bucket); each expires once it would be indistinguishable from a new bucket.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from resilient_http._bucket_store import Adapted, BucketSpec
from resilient_http._ratelimit_headers import Limits

if TYPE_CHECKING:
    from resilient_http.redis.store import RedisStore

__all__ = ["RedisBuckets"]


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class RedisBuckets:
    """The :class:`~resilient_http._bucket_store.SharedBuckets` of one ``RateLimit`` on a
    :class:`~resilient_http.RedisStore` (``store.rate_buckets(spec)`` makes it)."""

    __slots__ = ("store", "spec", "_config", "_scope")

    def __init__(self, store: RedisStore, spec: BucketSpec) -> None:
        self.store = store
        self.spec = spec
        self._config = (
            repr(spec.rate),
            repr(spec.burst),
            repr(spec.rate / spec.recovery),
            repr(1.0 / spec.max_pause),
        )
        self._scope = f"{spec.rate:g}/s,{spec.burst:g}|"

    def name(self, key: Hashable) -> str:
        if isinstance(key, tuple) and len(key) == 3:  # the default key: scheme, host, port
            text = f"{key[0]}://{key[1]}:{key[2]}"
        else:
            text = repr(key)
        return self.store.key("ratelimit", self._scope + text)

    async def reserve(self, name: str, bound: float | None) -> tuple[bool, float]:
        limit = -1 if bound is None else int(bound * 1e6) + 1
        reply = await self.store.run("ratelimit", (name,), ("take", *self._config, limit))
        granted, wait = reply
        return bool(int(granted)), int(wait) / 1e6

    async def adapt(self, name: str, limits: Limits, status: int, in_flight: int) -> Adapted:
        args = (
            "adapt",
            *self._config,
            status,
            _opt(limits.rate),
            _opt(limits.window),
            _opt(limits.remaining),
            _opt(limits.reset),
            _opt(limits.retry_after),
            in_flight,
            repr(self.spec.max_pause),
        )
        reason, pause, old, new = await self.store.run("ratelimit", (name,), args)
        text = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Adapted(text, float(pause), float(old), float(new))

    def __repr__(self) -> str:
        return f"RedisBuckets({self.store!r}, {self.spec!r})"
