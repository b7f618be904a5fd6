"""Where a response came from: ``rh.info(resp)``, and the cache's counters.

A layer that has something to say about a response (a cache hit, a retry, a wait for a
rate-limit token) sets one attribute on the ``ClientResponse``; a response nothing happened to
carries nothing, and :func:`info` answers with a shared default. So the common case costs no
allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from aiohttp import ClientResponse

__all__ = ["ResponseInfo", "CacheStats", "info"]

INFO: Final = "_rh_info"
"""The attribute of a ``ClientResponse`` that holds its :class:`ResponseInfo`."""
CacheOrigin = Literal["hit", "revalidated", "stale"]


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What the layers did to produce one response (see :func:`info`).

    Attributes:
        cache: ``None`` when the response came from the network; ``"hit"`` when a
            :class:`~resilient_http.Cache` answered without asking the server;
            ``"revalidated"`` when the stored response was confirmed by a 304 from the
            server; ``"stale"`` when a stored response past its freshness was served (the
            server failed, or it is refreshed in the background). Default ``None``.
        attempts: requests on the wire a :class:`~resilient_http.Retry` made for this
            response, the first included; ``0`` for a response served from the cache without
            a request. Default ``1``.
        waited: seconds spent waiting for a :class:`~resilient_http.RateLimit` token by the
            attempts that got a response (``0.0`` when a token was there at once).
    """

    cache: CacheOrigin | None = None
    attempts: int = 1
    waited: float = 0.0

    @property
    def from_cache(self) -> bool:
        """``True`` when the body came from the cache (hit, revalidated or stale)."""
        return self.cache is not None


NETWORK: Final = ResponseInfo()
HIT: Final = ResponseInfo(cache="hit", attempts=0)
STALE: Final = ResponseInfo(cache="stale", attempts=0)


def info(response: ClientResponse) -> ResponseInfo:
    """Where ``response`` came from: a cache hit, a revalidated or stale entry, how many
    attempts it took, how long it waited for rate-limit tokens.

    A response no layer touched (from the network, first attempt, no wait) gives
    ``ResponseInfo(cache=None, attempts=1, waited=0.0)``.

    Example::

        async with session.get(url) as resp:
            if rh.info(resp).from_cache: ...
    """
    found: ResponseInfo = getattr(response, INFO, NETWORK)
    return found


def tag(response: Any, what: ResponseInfo) -> Any:
    """Set what a layer has to say on ``response``; returns ``response``."""
    setattr(response, INFO, what)
    return response


def add(response: Any, **changes: Any) -> None:
    """Change some fields of ``response``'s info (a ``ClientResponse``; anything else is left
    alone)."""
    if isinstance(response, ClientResponse):
        setattr(response, INFO, replace(info(response), **changes))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A :class:`~resilient_http.Cache`'s counters, from ``cache.stats()``.

    Attributes:
        hits: lookups answered from the cache without a request to the server (fresh, or
            stale while revalidating).
        misses: lookups that went to the server (nothing stored, or a revalidation).
        entries: responses stored now (each ``Vary`` variant counts); ``None`` when the store
            does not say.
        bytes: bytes stored now, as counted against ``max_bytes``; ``None`` when the store
            does not say.
    """

    hits: int
    misses: int
    entries: int | None
    bytes: int | None

    @property
    def hit_ratio(self) -> float:
        """``hits / (hits + misses)``, ``0.0`` before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
