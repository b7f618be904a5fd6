"""The error hierarchy: every error is a ResilienceError and the aiohttp error callers
already catch, so adding a layer never breaks an existing ``except`` clause."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest

import resilient_http as rh
from resilient_http import errors

# Each error with the aiohttp class DESIGN.md and the module docstring promise.
DOCUMENTED = {
    rh.DeadlineExceeded: aiohttp.ServerTimeoutError,
    rh.RetriesExhausted: aiohttp.ClientError,
    rh.RateLimitExceeded: aiohttp.ClientError,
    rh.CircuitOpen: aiohttp.ClientConnectionError,
    rh.BodyNotReplayable: aiohttp.ClientError,
    rh.PaginationError: aiohttp.ClientError,
    rh.StoreUnavailable: aiohttp.ClientError,
}


def make(cls: type[Exception]) -> Exception:
    return cls("message")


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda c: c.__name__)
def test_every_error_is_a_resilience_error_and_its_aiohttp_class(cls: type[Exception]) -> None:
    assert issubclass(cls, rh.ResilienceError)
    assert issubclass(cls, DOCUMENTED[cls])
    assert issubclass(cls, aiohttp.ClientError)
    assert cls.__doc__
    error = make(cls)
    assert str(error) == "message"
    # The except clauses callers already have still catch it.
    with pytest.raises(aiohttp.ClientError):
        raise error
    with pytest.raises(rh.ResilienceError):
        raise error


def test_the_exported_errors_are_the_whole_hierarchy() -> None:
    exported = {getattr(errors, name) for name in errors.__all__}
    assert exported == {rh.ResilienceError, *DOCUMENTED}
    for cls in exported:
        assert getattr(rh, cls.__name__) is cls
    assert not issubclass(rh.ResilienceError, aiohttp.ClientError)  # the root is neutral
    assert issubclass(rh.ResilienceError, Exception)


def test_the_docstring_drawing_matches_the_classes() -> None:
    drawn = re.findall(r"[├└]── (\w+)\s+also ([\w.]+)", errors.__doc__ or "")
    assert {name for name, _ in drawn} == {cls.__name__ for cls in DOCUMENTED}
    for name, parent in drawn:
        cls = getattr(errors, name)
        assert issubclass(cls, getattr(aiohttp, parent.removeprefix("aiohttp.")))


def test_deadline_exceeded_is_a_timeout_error() -> None:
    error = rh.DeadlineExceeded("no response within 1 s", timeout=1.0)
    assert isinstance(error, asyncio.TimeoutError)
    if sys.version_info >= (3, 11):
        assert isinstance(error, TimeoutError)  # asyncio.TimeoutError is the builtin there
    assert isinstance(error, aiohttp.ServerTimeoutError)
    assert error.timeout == 1.0
    assert rh.DeadlineExceeded().timeout is None
    assert str(rh.DeadlineExceeded()) == "deadline exceeded"
    with pytest.raises(asyncio.TimeoutError):
        raise error


def test_circuit_open_is_a_connection_error_with_retry_in() -> None:
    error = rh.CircuitOpen("open", retry_in=2.5)
    assert isinstance(error, aiohttp.ClientConnectionError)
    assert error.retry_in == 2.5
    assert rh.CircuitOpen("isolated").retry_in is None


def test_retries_exhausted_carries_the_attempts() -> None:
    cause = aiohttp.ServerDisconnectedError()
    try:
        try:
            raise cause
        except aiohttp.ClientError as exc:
            raise rh.RetriesExhausted("gave up after 3 attempts", attempts=[1, 2, 3]) from exc
    except rh.RetriesExhausted as error:
        assert error.attempts == (1, 2, 3)  # a tuple, whatever was passed
        assert error.__cause__ is cause
    assert rh.RetriesExhausted("x").attempts == ()


def test_rate_limit_exceeded_carries_the_wait() -> None:
    assert rh.RateLimitExceeded("too long", wait=3.0).wait == 3.0
    assert rh.RateLimitExceeded("too long").wait is None
