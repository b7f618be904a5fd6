"""The errors resilient_http raises.

One hierarchy, rooted at :class:`ResilienceError`. Each error is also the aiohttp error that
callers already catch, so adding a layer never breaks an existing ``except`` clause::

    Exception
     └── ResilienceError
          ├── DeadlineExceeded      also aiohttp.ServerTimeoutError → asyncio.TimeoutError
          ├── RetriesExhausted      also aiohttp.ClientError
          ├── RateLimitExceeded     also aiohttp.ClientError
          ├── CircuitOpen           also aiohttp.ClientConnectionError
          ├── BodyNotReplayable     also aiohttp.ClientError
          ├── PaginationError       also aiohttp.ClientError
          └── StoreUnavailable      also aiohttp.ClientError

``DeadlineExceeded`` is an ``aiohttp.ServerTimeoutError`` (hence an ``aiohttp.ClientError``
and an ``asyncio.TimeoutError``, which is the builtin ``TimeoutError`` on Python 3.11+), so
``except asyncio.TimeoutError`` and ``except aiohttp.ClientError`` both still catch a timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp

__all__ = [
    "ResilienceError",
    "DeadlineExceeded",
    "RetriesExhausted",
    "RateLimitExceeded",
    "CircuitOpen",
    "BodyNotReplayable",
    "PaginationError",
    "StoreUnavailable",
]


class ResilienceError(Exception):
    """Base class of every error raised by a resilient_http layer."""


class DeadlineExceeded(ResilienceError, aiohttp.ServerTimeoutError):
    """A :class:`~resilient_http.Timeout` ran out.

    Attributes:
        timeout: the layer's limit, in seconds.
    """

    def __init__(self, message: str = "deadline exceeded", *, timeout: float | None = None):
        super().__init__(message)
        self.timeout = timeout


class RetriesExhausted(ResilienceError, aiohttp.ClientError):
    """A :class:`~resilient_http.Retry` gave up after an exception.

    The last error is chained as ``__cause__``.

    Attributes:
        attempts: what happened on each attempt, oldest first (layer-defined records).
    """

    def __init__(self, message: str, *, attempts: Sequence[Any] = ()):
        super().__init__(message)
        self.attempts = tuple(attempts)


class RateLimitExceeded(ResilienceError, aiohttp.ClientError):
    """A :class:`~resilient_http.RateLimit` would have had to wait past ``max_wait`` or the
    deadline. No token was taken.

    Attributes:
        wait: how long the call would have had to wait, in seconds.
    """

    def __init__(self, message: str, *, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class CircuitOpen(ResilienceError, aiohttp.ClientConnectionError):
    """A :class:`~resilient_http.CircuitBreaker` is open: the call failed fast, nothing was
    sent.

    Attributes:
        retry_in: seconds until the breaker lets a probe through.
    """

    def __init__(self, message: str, *, retry_in: float | None = None):
        super().__init__(message)
        self.retry_in = retry_in


class BodyNotReplayable(ResilienceError, aiohttp.ClientError):
    """A retry would have re-sent a streamed request body that was already consumed.

    aiohttp would silently send an empty body instead; that loses the caller's data.
    """


class PaginationError(ResilienceError, aiohttp.ClientError):
    """Pagination stopped: a cross-origin ``next`` link, a loop, or a malformed page."""


class StoreUnavailable(ResilienceError, aiohttp.ClientError):
    """A shared store (:class:`~resilient_http.RedisStore`) did not answer in time, or is
    degraded since it last failed, and the store's ``on_error`` is ``"closed"``: the call
    failed fast, nothing was sent. The store's own error, when there was one, is chained as
    ``__cause__``."""
