"""The default classifier, Verdict, Classifier and user-classifier normalisation."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from email.utils import formatdate

import aiohttp
import pytest
from multidict import CIMultiDict

import resilient_http as rh
from resilient_http.classify import (
    PERMANENT,
    SUCCESS,
    TRANSIENT,
    TRANSIENT_STATUSES,
    Classifier,
    Outcome,
    Verdict,
    classify,
    to_verdict,
)


@dataclass
class Resp:
    """Anything with a status and headers classifies like a response."""

    status: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304, 399])
def test_below_400_is_success(status: int) -> None:
    assert classify(Resp(status)).outcome is SUCCESS


@pytest.mark.parametrize("status", sorted(TRANSIENT_STATUSES))
def test_transient_statuses(status: int) -> None:
    v = classify(Resp(status))
    assert (v.outcome, v.delay, v.reason) == (TRANSIENT, None, f"status {status}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505, 507, 599])
def test_permanent_statuses(status: int) -> None:
    assert classify(Resp(status)).outcome is PERMANENT


def test_retry_after_becomes_the_delay() -> None:
    assert classify(Resp(503, CIMultiDict({"Retry-After": "2"}))).delay == 2.0
    date = formatdate(1_000_030, usegmt=True)
    assert classify(Resp(429, CIMultiDict({"Retry-After": date})), now=1_000_000).delay == 30.0
    assert classify(Resp(429, CIMultiDict({"X-RateLimit-Reset": "7"}))).delay == 7.0
    assert classify(Resp(503, CIMultiDict({"Retry-After": "junk"}))).delay is None
    assert classify(Resp(404, CIMultiDict({"Retry-After": "2"}))).delay is None


def _key() -> aiohttp.client_reqrep.ConnectionKey:
    return aiohttp.client_reqrep.ConnectionKey("h", 80, False, True, None, None, None)


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "refused")),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        aiohttp.ServerTimeoutError("read timeout"),
        aiohttp.ConnectionTimeoutError("connect timeout"),
        rh.DeadlineExceeded("inner attempt timeout", timeout=1.0),
        asyncio.TimeoutError(),
        ConnectionResetError(),
        asyncio.IncompleteReadError(b"", 10),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_errors(error: BaseException) -> None:
    assert classify(error).outcome is TRANSIENT
    assert classify(error).reason == type(error).__name__


@pytest.mark.parametrize(
    "error",
    [
        rh.CircuitOpen("open", retry_in=1),
        rh.RateLimitExceeded("too long", wait=5),
        rh.BodyNotReplayable("consumed"),
        rh.RetriesExhausted("inner retry gave up"),
        aiohttp.InvalidURL("nope"),
        ValueError("bug"),
        KeyError("x"),
        OSError(2, "No such file"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent_errors(error: BaseException) -> None:
    assert classify(error).outcome is PERMANENT


def test_cancellation_is_never_transient() -> None:
    assert classify(asyncio.CancelledError()).outcome is PERMANENT


def _response_error(
    status: int, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(
        aiohttp.client_reqrep.URL("http://h/x"),
        "GET",
        CIMultiDict(),
        aiohttp.client_reqrep.URL("http://h/x"),
    )
    return aiohttp.ClientResponseError(info, (), status=status, headers=CIMultiDict(headers or {}))


def test_client_response_error_is_classified_by_status() -> None:
    assert classify(_response_error(503)).outcome is TRANSIENT
    assert classify(_response_error(429, {"Retry-After": "4"})).delay == 4.0
    assert classify(_response_error(404)).outcome is PERMANENT
    assert classify(_response_error(200)).outcome is PERMANENT  # an error is never a success


def test_any_other_value_is_success() -> None:
    for value in (None, 0, "x", {"status": 503}, Resp.__name__):
        assert classify(value).outcome is SUCCESS


def test_classifier_adds_statuses_and_exceptions() -> None:
    class Flaky(Exception):
        pass

    c = Classifier(statuses={409}, exceptions=(Flaky,))
    assert c(Resp(409, CIMultiDict({"Retry-After": "1"}))) == Verdict(TRANSIENT, 1.0, "status 409")
    assert c(Flaky()).outcome is TRANSIENT
    assert c(_response_error(409)).outcome is TRANSIENT
    assert c(Resp(503)).outcome is TRANSIENT  # the default still applies
    assert c(Resp(404)).outcome is PERMANENT
    assert c(ValueError()).outcome is PERMANENT


def test_classifier_validation() -> None:
    with pytest.raises(ValueError, match="statuses must be HTTP status codes"):
        Classifier(statuses={99})
    with pytest.raises(TypeError, match="exceptions must be Exception subclasses"):
        Classifier(exceptions=(int,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fallback must be callable"):
        Classifier(fallback=3)  # type: ignore[arg-type]


def test_user_classifier_results_are_normalised() -> None:
    r = Resp(418)
    assert to_verdict(TRANSIENT, r) == Verdict(TRANSIENT, None, "status 418")
    assert to_verdict(SUCCESS, r).outcome is SUCCESS
    assert to_verdict(None, r).outcome is PERMANENT  # the default decides
    v = Verdict(TRANSIENT, 3)
    assert to_verdict(v, r) is v
    with pytest.raises(TypeError, match="must return an Outcome, a Verdict or None"):
        to_verdict(True, r)


def test_verdict_validation_and_repr() -> None:
    with pytest.raises(TypeError, match="outcome must be an Outcome"):
        Verdict("transient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay must be >= 0 seconds"):
        Verdict(TRANSIENT, -1)
    for endless in (math.inf, math.nan, 10**400):  # a delay must be a finite time
        with pytest.raises(ValueError, match="delay must be a finite number of seconds"):
            Verdict(TRANSIENT, endless)
    with pytest.raises(TypeError, match="reason must be a str"):
        Verdict(TRANSIENT, None, 3)  # type: ignore[arg-type]
    assert repr(Verdict(TRANSIENT, 2, "status 503")) == "Verdict(TRANSIENT, delay=2, 'status 503')"
    assert Verdict(PERMANENT).reason == "permanent"
    assert {Verdict(SUCCESS), Verdict(SUCCESS)} == {Verdict(SUCCESS)}
    assert list(Outcome) == [SUCCESS, TRANSIENT, PERMANENT]
