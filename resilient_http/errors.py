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

When a :class:`~resilient_http.Retry` gives up after an exception, the error it raises is
both a ``RetriesExhausted`` and an instance of the last attempt's exception class (a subclass
made once per class), so ``except aiohttp.ClientConnectorError`` catches a refused connection
behind ``Retry`` as it does without it; the attributes of the last error are there too.

``DeadlineExceeded`` is an ``aiohttp.ServerTimeoutError`` (hence an ``aiohttp.ClientError``
and an ``asyncio.TimeoutError``, which is the builtin ``TimeoutError`` on Python 3.11+), so
``except asyncio.TimeoutError`` and ``except aiohttp.ClientError`` both still catch a timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from resilient_http.retry import Attempt

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

    The last error is chained as ``__cause__``. What ``Retry`` raises is also an instance of
    that error's class (see :func:`exhausted`): ``except aiohttp.ClientConnectorError`` and
    ``except RetriesExhausted`` both catch it.

    Attributes:
        attempts: what happened on each attempt, oldest first: a tuple of
            :class:`~resilient_http.Attempt` (empty when none were recorded).
    """

    attempts: tuple[Attempt, ...]

    def __init__(self, message: str, *, attempts: Sequence[Attempt] = ()):
        super().__init__(message)
        self.attempts = tuple(attempts)


_AS: dict[type[BaseException], type[RetriesExhausted]] = {}


def _as_class(base: type[BaseException]) -> type[RetriesExhausted]:
    """``RetriesExhausted`` that is also a ``base``: made once per class, then cached."""
    made = _AS.get(base)
    if made is None:
        try:
            made = type(
                f"RetriesExhausted[{base.__name__}]",
                (RetriesExhausted, base),
                {"__module__": __name__, "__str__": _str, "__reduce__": _reduce},
            )
        except TypeError:  # a base that cannot be combined (an instance layout conflict)
            made = RetriesExhausted
        _AS[base] = made
    return made


def _str(self: RetriesExhausted) -> str:
    return str(self.__dict__.get("_rh_message", ""))


def _reduce(self: RetriesExhausted) -> tuple[Any, ...]:
    base = next(c for c in type(self).__bases__ if c is not RetriesExhausted)
    return _rebuild, (base, self.args, self.__dict__)


def _rebuild(base: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    cls = _as_class(base)
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    if isinstance(error, OSError) and "_rh_oserror" in state:  # slots, not in __dict__
        error.errno, error.strerror, error.filename, error.filename2 = state["_rh_oserror"]
    return error


def exhausted(
    message: str, error: BaseException, attempts: Sequence[Attempt]
) -> RetriesExhausted:
    """The error a ``Retry`` raises after giving up on ``error``: a :class:`RetriesExhausted`
    that is also an instance of ``type(error)``, with its ``args`` and attributes, ``str()``
    of ``message`` and ``.attempts``. Chain it to ``error`` (``raise ... from error``).
    ``error`` already a ``RetriesExhausted`` (an inner retry) gives a plain one."""
    if isinstance(error, RetriesExhausted):
        return RetriesExhausted(message, attempts=attempts)
    cls = _as_class(type(error))
    if cls is RetriesExhausted:
        return RetriesExhausted(message, attempts=attempts)
    state = {**error.__dict__, "_rh_message": message, "attempts": tuple(attempts)}
    if isinstance(error, OSError):
        state["_rh_oserror"] = (error.errno, error.strerror, error.filename, error.filename2)
    made: RetriesExhausted = _rebuild(type(error), error.args, state)
    return made


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
