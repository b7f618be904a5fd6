"""What counts as a failure for :class:`~resilient_http.CircuitBreaker`: the default
predicate, and the outcomes that count as nothing at all."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse, ClientResponseError

from resilient_http.classify import TRANSIENT, classify
from resilient_http.errors import (
    BodyNotReplayable,
    CircuitOpen,
    RateLimitExceeded,
    RetriesExhausted,
)

__all__ = ["is_transient_failure", "failed_status", "NOT_SENT"]

NOT_SENT = (CircuitOpen, RateLimitExceeded, BodyNotReplayable)
"""Errors of inner layers that refuse a call before it is sent: no outcome to count."""


def failed_status(status: int) -> bool:
    """Whether a response status says the server is unwell: 5xx except 501 and 505."""
    return 500 <= status <= 599 and status != 501 and status != 505


def is_transient_failure(result: Any, error: BaseException | None) -> bool:
    """The default failure predicate of :class:`~resilient_http.CircuitBreaker`: did this
    call fail in a way that says the server (or the way to it) is unwell?

    An exception is a failure when :func:`~resilient_http.classify` calls it transient
    (connection errors: refused, reset, disconnected, DNS; timeouts, ``DeadlineExceeded``
    from an inner ``Timeout`` included; truncated or broken bodies), and so is
    ``RetriesExhausted`` (an inner ``Retry`` gave up on transient errors). Everything
    ``classify`` calls permanent is not: ``CircuitOpen`` from another breaker,
    ``RateLimitExceeded``, ``BodyNotReplayable``, TLS certificate and fingerprint errors
    (the client's trust setup), and any other exception (a bug in the caller's code says
    nothing about the server).

    A response — or ``aiohttp.ClientResponseError`` in decorator mode — is a failure when
    its status is 5xx except 501 Not Implemented and 505 HTTP Version Not Supported
    (answers about the request, not the server's health). Unlike ``classify``, 408 and
    **429** are not failures (the server answered, and is asking to slow down; ``RateLimit``
    and ``Retry`` handle it — opening the circuit would turn a throttle into an outage), and
    every other 5xx is one (a 507, or a CDN's 52x "origin unreachable", says the host is
    unwell).
    """
    if error is None:
        return isinstance(result, ClientResponse) and failed_status(result.status)
    if isinstance(error, ClientResponseError):
        return failed_status(error.status)
    return isinstance(error, RetriesExhausted) or classify(error).outcome is TRANSIENT
