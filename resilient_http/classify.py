"""Classification: is an outcome a success, worth retrying, or final?

:func:`classify` is the default classifier. It looks at one thing — a response (or any value
a decorated function returned) or an exception — and returns a :class:`Verdict`: an
:class:`Outcome` and, for a transient failure, the delay the server asked for.

Transient (worth retrying):
    connection errors (refused, reset, disconnected, DNS), timeouts (including an inner
    :class:`~resilient_http.Timeout`'s ``DeadlineExceeded``), truncated or broken bodies, and
    the statuses 408, 429, 500, 502, 503 and 504 (also when raised as
    ``aiohttp.ClientResponseError`` by ``raise_for_status``).
Permanent (final):
    other 4xx, 501, other 5xx, TLS certificate errors, invalid URLs, too many redirects,
    :class:`~resilient_http.errors.CircuitOpen`, ``RateLimitExceeded``, ``BodyNotReplayable``,
    ``RetriesExhausted`` of an inner retry, and any other exception.
Success:
    any response below 400, any other returned value.

Extend it with :class:`Classifier` (extra transient statuses or exception types), or pass
your own callable to ``Retry(classify=...)``: it receives the response or the exception and
returns an :class:`Outcome`, a :class:`Verdict`, or ``None`` to defer to the default.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import aiohttp

from resilient_http._ratelimit_headers import delay_hint
from resilient_http._validate import collection, optional_duration, show
from resilient_http.errors import (
    BodyNotReplayable,
    CircuitOpen,
    RateLimitExceeded,
    RetriesExhausted,
)

__all__ = [
    "Outcome",
    "Verdict",
    "SUCCESS",
    "TRANSIENT",
    "PERMANENT",
    "TRANSIENT_STATUSES",
    "classify",
    "Classifier",
]


class Outcome(enum.Enum):
    """What one attempt amounted to."""

    SUCCESS = "success"
    TRANSIENT = "transient"
    """Failed, and another attempt may succeed."""
    PERMANENT = "permanent"
    """Failed, and another attempt would fail the same way."""


SUCCESS: Final = Outcome.SUCCESS
TRANSIENT: Final = Outcome.TRANSIENT
PERMANENT: Final = Outcome.PERMANENT

TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
"""The statuses the default classifier retries."""


class Verdict:
    """A classification: an :class:`Outcome`, the delay the server asked for (seconds, or
    ``None`` to use the backoff) and a short reason for events and errors."""

    __slots__ = ("outcome", "delay", "reason")

    def __init__(self, outcome: Outcome, delay: float | None = None, reason: str = "") -> None:
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be an Outcome, got {show(outcome)}")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {type(reason).__name__} {show(reason)}")
        self.outcome = outcome
        self.delay = optional_duration("delay", delay, allow_zero=True)
        self.reason = reason or outcome.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.outcome, self.delay, self.reason) == (other.outcome, other.delay, other.reason)

    def __hash__(self) -> int:
        return hash((self.outcome, self.delay, self.reason))

    def __repr__(self) -> str:
        extra = "" if self.delay is None else f", delay={self.delay:g}"
        return f"Verdict({self.outcome.name}{extra}, {self.reason!r})"


_OK: Final = Verdict(SUCCESS, None, "success")

# Checked in order; the first match decides.
_PERMANENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    CircuitOpen,
    RateLimitExceeded,
    BodyNotReplayable,
    RetriesExhausted,
    aiohttp.ClientConnectorCertificateError,
    aiohttp.ClientSSLError,
    aiohttp.InvalidURL,
    aiohttp.TooManyRedirects,
    aiohttp.ServerFingerprintMismatch,
)
_TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    asyncio.TimeoutError,  # DeadlineExceeded, ServerTimeoutError, ConnectionTimeoutError
    TimeoutError,
    aiohttp.ClientConnectionError,  # refused, reset, disconnected, DNS, ClientOSError
    aiohttp.ClientPayloadError,  # truncated or broken body
    ConnectionError,  # raw socket errors in decorator mode
    asyncio.IncompleteReadError,
)


def _status_verdict(status: int, headers: Any, now: float | None) -> Verdict:
    if status < 400:
        return _OK
    if status in TRANSIENT_STATUSES:
        delay = None
        if headers is not None:
            delay = delay_hint(status, headers, time.time() if now is None else now)
        return Verdict(TRANSIENT, delay, f"status {status}")
    return Verdict(PERMANENT, None, f"status {status}")


def classify(outcome: Any, *, now: float | None = None) -> Verdict:
    """The default classifier (the rules are in the module docstring).

    Args:
        outcome: a response (anything with an ``int`` ``status`` and ``headers``, such as an
            ``aiohttp.ClientResponse``), an exception, or any other value (a success).
        now: the wall-clock time for HTTP-date hints, seconds since the epoch; default
            ``time.time()``.

    Returns:
        A :class:`Verdict`; for a transient response, ``delay`` is what ``Retry-After`` or
        the rate-limit headers asked for (``None`` if nothing usable was sent).
    """
    if isinstance(outcome, BaseException):
        if not isinstance(outcome, Exception):
            return Verdict(PERMANENT, None, type(outcome).__name__)  # CancelledError & co.
        if isinstance(outcome, _PERMANENT_ERRORS):
            return Verdict(PERMANENT, None, type(outcome).__name__)
        if isinstance(outcome, aiohttp.ClientResponseError):
            v = _status_verdict(outcome.status, outcome.headers, now)
            if v.outcome is SUCCESS:  # an error with a 2xx status: json() on bad content
                return Verdict(PERMANENT, None, type(outcome).__name__)
            return v
        if isinstance(outcome, _TRANSIENT_ERRORS):
            return Verdict(TRANSIENT, None, type(outcome).__name__)
        return Verdict(PERMANENT, None, type(outcome).__name__)
    status = getattr(outcome, "status", None)
    if type(status) is int:
        return _status_verdict(status, getattr(outcome, "headers", None), now)
    return _OK


class Classifier:
    """The default classifier plus extra transient statuses and exception types.

    Args:
        statuses: more statuses to retry (e.g. ``{409}``); ints in 100..599. Default none.
        exceptions: more exception types to retry; default none.
        fallback: the classifier consulted for everything else; default :func:`classify`.

    Example: ``Retry(classify=Classifier(statuses={409}, exceptions=(MyFlakyError,)))``,
    or simply ``Retry(statuses={409}, exceptions=(MyFlakyError,))``.
    """

    __slots__ = ("statuses", "exceptions", "fallback")

    def __init__(
        self,
        *,
        statuses: Iterable[int] = (),
        exceptions: Iterable[type[BaseException]] = (),
        fallback: Callable[[Any], Any] = classify,
    ) -> None:
        codes = collection("statuses", statuses, "ints (HTTP status codes)")
        for code in codes:
            if type(code) is not int:
                raise TypeError(
                    f"statuses must be HTTP status codes (ints), got {type(code).__name__} "
                    f"{show(code)}"
                )
            if not 100 <= code <= 599:
                raise ValueError(
                    f"statuses must be HTTP status codes (100..599), got {show(code)}"
                )
        self.statuses = frozenset(codes)
        self.exceptions = collection("exceptions", exceptions, "Exception subclasses")
        for e in self.exceptions:
            if not (isinstance(e, type) and issubclass(e, Exception)):
                raise TypeError(f"exceptions must be Exception subclasses, got {show(e)}")
        if not callable(fallback):
            raise TypeError(f"fallback must be callable, got {show(fallback)}")
        self.fallback = fallback

    def __call__(self, outcome: Any) -> Verdict:
        if isinstance(outcome, BaseException):
            if self.exceptions and isinstance(outcome, self.exceptions):
                return Verdict(TRANSIENT, None, type(outcome).__name__)
            status = getattr(outcome, "status", None)
        else:
            status = getattr(outcome, "status", None)
        if type(status) is int and status in self.statuses:
            headers = getattr(outcome, "headers", None)
            delay = None if headers is None else delay_hint(status, headers, time.time())
            return Verdict(TRANSIENT, delay, f"status {status}")
        return to_verdict(self.fallback(outcome), outcome)

    def __repr__(self) -> str:
        return f"Classifier(statuses={sorted(self.statuses)}, exceptions={self.exceptions})"


def to_verdict(value: Any, outcome: Any) -> Verdict:
    """Normalise what a user classifier returned: a Verdict, an Outcome, or ``None`` (use the
    default)."""
    if type(value) is Verdict:
        return value
    if isinstance(value, Outcome):
        return _OK if value is SUCCESS else Verdict(value, None, _describe(outcome))
    if value is None:
        return classify(outcome)
    if isinstance(value, Verdict):
        return value
    raise TypeError(
        f"a classifier must return an Outcome, a Verdict or None, got {type(value).__name__} "
        f"{show(value)}"
    )


def _describe(outcome: Any) -> str:
    if isinstance(outcome, BaseException):
        return type(outcome).__name__
    status = getattr(outcome, "status", None)
    return f"status {status}" if type(status) is int else "value"
