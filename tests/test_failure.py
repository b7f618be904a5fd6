"""The breaker's default failure predicate: which outcomes say a host is unwell."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import resilient_http as rh
from resilient_http._failure import NOT_SENT, failed_status, is_transient_failure
from resilient_http.classify import PERMANENT


def test_default_predicate() -> None:
    f = is_transient_failure
    assert f(None, aiohttp.ServerDisconnectedError())
    assert f(None, aiohttp.ClientPayloadError("cut"))
    assert f(None, asyncio.TimeoutError())
    assert f(None, ConnectionResetError())
    assert f(None, rh.DeadlineExceeded())
    assert f(None, rh.RetriesExhausted("gave up"))
    info = aiohttp.RequestInfo(aiohttp.client.URL("http://h/"), "GET", {}, aiohttp.client.URL("http://h/"))  # type: ignore[arg-type]
    assert f(None, aiohttp.ClientResponseError(info, (), status=503))
    assert not f(None, aiohttp.ClientResponseError(info, (), status=429))
    assert not f(None, aiohttp.ClientResponseError(info, (), status=501))
    assert not f(None, rh.CircuitOpen("inner breaker", retry_in=1))
    assert not f(None, rh.RateLimitExceeded("no token"))
    assert not f(None, rh.BodyNotReplayable("streamed"))
    assert not f(None, ValueError("a bug in the caller"))
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    assert not f(None, aiohttp.ClientConnectorCertificateError(key, ValueError("bad cert")))
    assert f(None, aiohttp.ClientConnectorError(key, OSError(111, "refused")))
    assert not f("any value", None)
    assert not f(None, None)


@pytest.mark.parametrize(
    ("status", "failed"),
    [(200, False), (404, False), (429, False), (499, False), (500, True), (501, False),
     (502, True), (503, True), (504, True), (505, False), (507, True), (522, True),
     (599, True)],
)
def test_failed_status(status: int, failed: bool) -> None:
    assert failed_status(status) is failed


def test_refusals_before_sending_are_listed() -> None:
    assert set(NOT_SENT) == {rh.CircuitOpen, rh.RateLimitExceeded, rh.BodyNotReplayable}


def test_every_exception_classify_calls_transient_is_a_failure() -> None:
    # The predicate defers to classify for exceptions: a short read and the builtin
    # TimeoutError (a different class from asyncio's on Python 3.10) count too.
    assert is_transient_failure(None, asyncio.IncompleteReadError(b"", 10))
    assert is_transient_failure(None, TimeoutError())
    assert rh.classify(rh.RetriesExhausted("gave up")).outcome is PERMANENT  # the exception
