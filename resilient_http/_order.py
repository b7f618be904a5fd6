"""A hand-built :class:`~resilient_http.Stack` whose order breaks a guarantee: a warning.

The order that works, outermost first: ``FieldMask``, ``Cache``, ``Timeout`` (total),
``Retry``, ``CircuitBreaker``, ``RateLimit``, ``Timeout`` (per attempt). Four mistakes are
caught, each because a promise of the layers no longer holds:

- ``RateLimit`` outside ``Retry``: retries take no token, so the server sees more requests
  than the limit allows;
- ``Cache`` inside ``Retry`` or ``RateLimit``: a cache hit costs a token or a retry's
  bookkeeping, and a stale answer on error comes after the retries instead of in their stead;
- ``FieldMask`` inside ``Cache``: the cache key misses the mask, so two masks of one URL share
  an entry;
- every ``Timeout`` outside ``Retry`` (two or more): the one meant per attempt bounds all
  attempts together.

The verdict is computed once per shape of stack (the classes of its layers); the warning is
issued at each construction, and Python's warning filters show it once per line by default.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["OrderWarning", "check_order"]

WORKS: Final = (
    "FieldMask, Cache, Timeout (total), Retry, CircuitBreaker, RateLimit, Timeout (per attempt)"
)
_VERDICTS: dict[Any, str | None] = {}
_MAX: Final = 4096


class OrderWarning(UserWarning):
    """A :class:`~resilient_http.Stack` whose layers are in an order that breaks one of their
    guarantees (see "Layer order" in the README). The message names the layers and the order
    that works. Silence it, for a stack built so on purpose, with
    ``warnings.filterwarnings("ignore", category=rh.OrderWarning)``."""


def check_order(layers: Sequence[Any], shape: Any) -> None:
    """Warn (:class:`OrderWarning`) when ``layers`` (outermost first) are in a wrong order;
    ``shape`` keys the cached verdict."""
    try:
        problem = _VERDICTS[shape]
    except KeyError:
        if len(_VERDICTS) >= _MAX:
            _VERDICTS.clear()
        problem = _VERDICTS[shape] = _problems(layers)
    if problem is not None:
        warnings.warn(problem, OrderWarning, stacklevel=3)


def _problems(layers: Sequence[Any]) -> str | None:
    from resilient_http.cache import Cache
    from resilient_http.fieldmask import FieldMask
    from resilient_http.ratelimit import RateLimit
    from resilient_http.retry import Retry
    from resilient_http.timeout import Timeout

    def where(cls: type) -> list[int]:
        return [n for n, layer in enumerate(layers) if isinstance(layer, cls)]

    retries, limits, caches = where(Retry), where(RateLimit), where(Cache)
    masks, timeouts = where(FieldMask), where(Timeout)
    found: list[str] = []
    if retries and limits and limits[0] < retries[-1]:
        found.append("RateLimit is outside Retry: retries take no token, so more requests "
                     "reach the server than the limit allows")
    inner = [n for n in retries + limits if caches and n < caches[-1]]
    if inner:
        what = type(layers[min(inner)]).__name__
        found.append(f"Cache is inside {what}: a hit costs what {what} costs, and a stale "
                     "answer on error comes only after it")
    if caches and masks and caches[0] < masks[-1]:
        found.append("FieldMask is inside Cache: the cache key misses the mask, so two masks "
                     "of one URL share an entry")
    if retries and len(timeouts) >= 2 and timeouts[-1] < retries[0]:
        found.append("every Timeout is outside Retry: the inner one bounds all attempts "
                     "together, not each attempt")
    if not found:
        return None
    names = ", ".join(type(layer).__name__ for layer in layers)
    return f"Stack({names}): {'; '.join(found)}. The order that works, outermost first: {WORKS}"
