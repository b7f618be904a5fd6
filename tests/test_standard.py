"""standard(): the recommended stack, in the documented order, validated."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.testing import MockServer, Reply


def test_standard_is_one_fused_stack_in_a_tuple() -> None:
    mws = rh.standard()
    assert isinstance(mws, tuple) and len(mws) == 1
    assert isinstance(mws[0], rh.Stack)
    timeouts = [layer for layer in mws[0].layers if isinstance(layer, rh.Timeout)]
    assert [t.seconds for t in timeouts] == [30.0, 10.0]  # total outside, attempt inside


def test_an_attempt_timeout_longer_than_the_total_is_an_error() -> None:
    with pytest.raises(ValueError, match="attempt_timeout"):
        rh.standard(total_timeout=5, attempt_timeout=10)
    with pytest.raises(ValueError, match="total_timeout"):
        rh.standard(total_timeout=-1)
    rh.standard(total_timeout=timedelta(seconds=10), attempt_timeout=10)  # equal is fine
    assert all(
        not isinstance(layer, rh.Timeout)
        for layer in rh.standard(total_timeout=None, attempt_timeout=None)[0].layers
    )


async def test_standard_works_as_session_middlewares() -> None:
    async with (
        MockServer() as server,
        aiohttp.ClientSession(middlewares=rh.standard()) as session,
        session.get(server.url("/ok")) as resp,
    ):
        assert resp.status == 200


def test_standard_includes_retry_between_the_timeouts() -> None:
    layers = rh.standard()[0].layers
    names = [type(layer).__name__ for layer in layers]
    assert names == ["Timeout", "Retry", "CircuitBreaker", "Timeout"]
    assert layers[1].attempts == 4  # type: ignore[attr-defined]
    assert rh.standard(attempts=2)[0].layers[1].attempts == 2  # type: ignore[attr-defined]
    mine = rh.Retry(attempts=6, idempotency_key=True)
    assert rh.standard(retry=mine)[0].layers[1] is mine
    assert not any(isinstance(x, rh.Retry) for x in rh.standard(retry=False)[0].layers)
    with pytest.raises(ValueError, match="not both"):
        rh.standard(attempts=3, retry=mine)
    with pytest.raises(TypeError, match="retry must be a bool or a Retry"):
        rh.standard(retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        rh.standard(attempts=0)


async def test_on_event_reaches_every_layer_standard_builds() -> None:
    seen: list[rh.Event] = []
    middlewares = rh.standard(fields=["id"], cache=60, rate=1000, on_event=seen.append)
    assert all(
        seen.append in getattr(layer, "_emit", getattr(layer, "_events", None)).hooks
        for layer in middlewares[0].layers
        if not isinstance(layer, rh.Timeout)
    )
    async with MockServer() as server:
        server.script("/flaky", Reply(503), Reply(200, json={"id": 1}))
        async with (
            aiohttp.ClientSession(middlewares=middlewares) as session,
            session.get(server.url("/flaky")) as resp,
        ):
            assert await resp.json() == {"id": 1}
    names = {event.name for event in seen}
    assert {"fieldmask.applied", "cache.miss", "retry.scheduled"} <= names


def test_on_event_is_checked_even_when_no_layer_takes_it() -> None:
    with pytest.raises(TypeError, match="on_event"):
        rh.standard(retry=False, breaker=False, on_event=1)  # type: ignore[arg-type]
