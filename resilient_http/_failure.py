"""What counts as a failure for :class:`~resilient_http.CircuitBreaker`: the default
predicate, and the outcomes that count as nothing at all."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import (
    ClientConnectionError,
    ClientConnectorCertificateError,
    ClientPayloadError,
    ClientResponse,
    ClientResponseError,
    ClientSSLError,
    ServerFingerprintMismatch,
)

from resilient_http.errors import (
    BodyNotReplayable,
    CircuitOpen,
    DeadlineExceeded,
    RateLimitExceeded,
    ResilienceError,
    RetriesExhausted,
)

__all__ = ["is_transient_failure", "failed_status", "NOT_SENT"]

_CONFIG_ERRORS = (ClientConnectorCertificateError, ClientSSLError, ServerFingerprintMismatch)
"""Connection errors that are about this client's TLS setup, not the server's health."""

NOT_SENT = (CircuitOpen, RateLimitExceeded, BodyNotReplayable)
"""Errors of inner layers that refuse a call before it is sent: no outcome to count."""


def failed_status(status: int) -> bool:
    """Whether a response status says the server is unwell: 5xx except 501 and 505."""
    return 500 <= status <= 599 and status != 501 and status != 505


def is_transient_failure(result: Any, error: BaseException | None) -> bool:
    """The default failure predicate of :class:`~resilient_http.CircuitBreaker`: did this
    call fail in a way that says the server (or the way to it) is unwell?

    Failures: connection errors (refused, reset, disconnected, DNS), timeouts
    (``asyncio.TimeoutError``, ``DeadlineExceeded`` from an inner ``Timeout``), truncated
    or broken bodies, ``RetriesExhausted`` (an inner ``Retry`` gave up on transient errors),
    and responses — or ``aiohttp.ClientResponseError`` in decorator mode — with a 5xx status
    except 501 Not Implemented and 505 HTTP Version Not Supported (answers about the request,
    not the server's health).

    Not failures: every other status, **429 included** (the server is healthy and asking
    to slow down; ``RateLimit`` and ``Retry`` handle it — opening the circuit would turn a
    throttle into an outage), ``CircuitOpen`` from another breaker, ``RateLimitExceeded``,
    ``BodyNotReplayable``, TLS certificate and fingerprint errors (the client's trust
    setup; ``classify`` calls them permanent too), and any other exception (a bug in the
    caller's code says nothing about the server).

    It matches :func:`~resilient_http.classify`'s transient class except that 408 and 429
    are not failures (the server answered) and every 5xx but 501 and 505 is (a 507, or a
    CDN's 52x "origin unreachable", says the host is unwell).
    """
    if error is None:
        return isinstance(result, ClientResponse) and failed_status(result.status)
    if isinstance(error, ResilienceError):
        return isinstance(error, (DeadlineExceeded, RetriesExhausted))
    if isinstance(error, ClientResponseError):
        return failed_status(error.status)
    if isinstance(error, _CONFIG_ERRORS):
        return False
    return isinstance(
        error, (ClientConnectionError, ClientPayloadError, asyncio.TimeoutError, ConnectionError)
    )
