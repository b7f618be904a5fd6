"""``standard()``: the recommended stack, in the tested order, validated."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from resilient_http._clock import Clock
from resilient_http._middleware import Layer, Stack
from resilient_http._validate import duration, show
from resilient_http.breaker import CircuitBreaker
from resilient_http.cache import Cache
from resilient_http.events import Emitter, EventHook
from resilient_http.fieldmask import FieldMask
from resilient_http.ratelimit import RateLimit
from resilient_http.retry import Retry
from resilient_http.timeout import Timeout

__all__ = ["standard"]


def standard(
    *,
    fields: Sequence[str] | str | FieldMask | None = None,
    cache: Cache | float | timedelta | None = None,
    total_timeout: float | timedelta | None = 30.0,
    attempt_timeout: float | timedelta | None = 10.0,
    attempts: int = 4,
    retry: Retry | bool = True,
    breaker: bool | CircuitBreaker = True,
    rate: float | RateLimit | None = None,
    clock: Clock | None = None,
    on_event: EventHook | Sequence[EventHook] | None = None,
) -> tuple[Stack]:
    """The recommended stack as a one-element tuple, ready for ``middlewares=``.

    The order (outermost first) is the .NET standard resilience handler's, with the cache and
    field mask outside it::

        FieldMask → Cache → Timeout(total) → Retry → CircuitBreaker → RateLimit → Timeout(attempt)

    Args:
        fields: a field mask for every request: field names (``["id", "name"]`` →
            ``?fields=id,name``) or a configured :class:`FieldMask` (other styles, a URL
            filter). Default ``None``: no mask.
        cache: a :class:`Cache`, or a ``ttl`` in seconds (or a ``timedelta``) for
            ``Cache(ttl)`` with the defaults, or ``None`` for no cache. Default ``None``: a
            cache changes what callers see (stored answers, privacy rules), so it is opt-in.
            It sits outside the timeouts and retries: a hit costs no attempt and no token.
        total_timeout: deadline for the whole call, retries and sleeps included, in seconds;
            ``None`` for no total deadline. Default 30.
        attempt_timeout: limit for each attempt, body included, in seconds; ``None`` for none.
            Default 10. Must not be longer than ``total_timeout``.
        attempts: requests on the wire per call for the default ``Retry`` (1 + 3 retries,
            exponential backoff with full jitter, Retry-After honoured, a retry budget).
            Default 4.
        retry: ``True`` (default) for ``Retry(attempts=attempts)``; a ``Retry`` of your own
            (then leave ``attempts`` alone); ``False`` for no retries.
        breaker: a per-host :class:`CircuitBreaker` with its defaults (``True``, the
            default), ``False`` for none, or your own ``CircuitBreaker``. On by default: its
            defaults (open at 50 % failures over at least 20 calls in 30 s, break 5 s) leave
            an API that fails now and then alone and only stop calls to a host that is
            really down — where each retry would add load and latency for nothing.
        rate: requests per second per host, as a number (``RateLimit(rate)``: burst = rate,
            adaptive to the server's rate-limit headers), or a configured ``RateLimit``.
            Inside ``Retry``: each attempt costs a token. Default ``None``: no rate limit.
        clock: the clock every layer reads; default the event loop's.
        on_event: hook(s) receiving the events of every layer this function builds (the
            layers you pass in keep their own ``on_event``). Default ``None``: events go to
            the ``resilient_http`` logger only.

    Raises:
        ValueError: an attempt timeout longer than the total deadline.
    """
    Emitter("standard", on_event)  # on_event checked here, whichever layers are built
    total = None if total_timeout is None else duration("total_timeout", total_timeout)
    attempt = None if attempt_timeout is None else duration("attempt_timeout", attempt_timeout)
    if total is not None and attempt is not None and attempt > total:
        raise ValueError(
            f"attempt_timeout ({attempt:g} s) must not be longer than total_timeout "
            f"({total:g} s): the total deadline would always cut the attempt short"
        )
    if isinstance(retry, Retry):
        if attempts != 4:
            raise ValueError("pass attempts= or retry=Retry(...), not both")
        retry_layer: Retry | None = retry
    elif isinstance(retry, bool):
        retry_layer = Retry(attempts, clock=clock, on_event=on_event) if retry else None
    else:
        raise TypeError(
            f"retry must be a bool or a Retry, got {type(retry).__name__} {show(retry)}"
        )
    if not isinstance(breaker, (bool, CircuitBreaker)):
        raise TypeError(
            f"breaker must be a bool or a CircuitBreaker, got {type(breaker).__name__} "
            f"{show(breaker)}"
        )
    layers: list[Layer] = []
    if fields is not None:
        layers.append(
            fields if isinstance(fields, FieldMask) else FieldMask(fields, on_event=on_event)
        )
    if isinstance(cache, Cache):
        layers.append(cache)
    elif cache is not None:
        layers.append(
            Cache(duration("cache", cache, allow_zero=True), clock=clock, on_event=on_event)
        )
    if total is not None:
        layers.append(Timeout(total, clock=clock))
    if retry_layer is not None:
        layers.append(retry_layer)
    if breaker is True:
        layers.append(CircuitBreaker(clock=clock, on_event=on_event))
    elif isinstance(breaker, CircuitBreaker):
        layers.append(breaker)
    if rate is not None:
        if isinstance(rate, RateLimit):
            layers.append(rate)
        elif isinstance(rate, (int, float)) and not isinstance(rate, bool):
            layers.append(RateLimit(rate, clock=clock, on_event=on_event))
        else:
            raise TypeError(
                f"rate must be a number of requests per second, a RateLimit or None, "
                f"got {type(rate).__name__} {show(rate)}"
            )
    if attempt is not None:
        layers.append(Timeout(attempt, clock=clock))
    return (Stack(*layers),)
