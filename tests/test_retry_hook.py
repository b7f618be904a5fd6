"""``Retry(before_retry=...)``: an async hook awaited before each retry, on a real MockServer."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from resilient_http.backoff import Backoff
from resilient_http.classify import TRANSIENT
from resilient_http.retry import Attempt, Retry
from resilient_http.testing import FakeClock, MockServer, Reply

pytest_plugins = ("_autojump",)  # the fixtures: clock, server


async def test_hook_refreshes_the_token_before_the_retry(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", 401, Reply(200, json={"ok": True}))
    seen: list[tuple[Attempt, Any, float]] = []

    async def refresh(attempt: Attempt, request: Any) -> None:
        seen.append((attempt, request, clock.now()))
        request.headers["Authorization"] = "Bearer fresh"

    retry = Retry(
        clock=clock,
        backoff=Backoff(1.0, jitter="none"),
        statuses={401},
        before_retry=refresh,
    )
    async with aiohttp.ClientSession(middlewares=(retry,)) as s, s.get(
        server.url("/x"), headers={"Authorization": "Bearer stale"}
    ) as resp:
        assert resp.status == 200
    sent = [r.headers.get("Authorization") for r in server.requests_for("/x")]
    assert sent == ["Bearer stale", "Bearer fresh"]
    assert len(seen) == 1
    attempt, request, when = seen[0]
    assert (attempt.number, attempt.outcome, attempt.status, attempt.delay) == (
        1, TRANSIENT, 401, 1.0
    )
    assert request is not None and request.method == "GET"
    assert clock.sleeps == [1.0] and when >= 1.0  # after the backoff wait


class TokenError(Exception):
    pass


async def test_hook_error_ends_the_call(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", 503, 200)

    async def broken(attempt: Attempt, request: Any) -> None:
        raise TokenError("cannot refresh")

    retry = Retry(clock=clock, before_retry=broken)
    async with aiohttp.ClientSession(middlewares=(retry,)) as s:
        with pytest.raises(TokenError, match="cannot refresh"):
            await s.get(server.url("/x"))
    assert server.count("/x") == 1


async def test_hook_runs_with_zero_delay_too(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(503, headers={"Retry-After": "0"}), 200)
    calls: list[int] = []

    async def hook(attempt: Attempt, request: Any) -> None:
        calls.append(attempt.number)

    async with aiohttp.ClientSession(
        middlewares=(Retry(clock=clock, before_retry=hook),)
    ) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
    assert calls == [1]


async def test_hook_in_decorator_mode_gets_no_request(clock: FakeClock) -> None:
    from resilient_http import resilient

    calls: list[Any] = []

    async def hook(attempt: Attempt, request: Any) -> None:
        calls.append((attempt.number, type(attempt.error).__name__, request))

    tries = iter([ConnectionResetError("x"), None])

    @resilient(Retry(clock=clock, before_retry=hook))
    async def f() -> str:
        err = next(tries)
        if err is not None:
            raise err
        return "ok"

    assert await f() == "ok"
    assert calls == [(1, "ConnectionResetError", None)]


def test_before_retry_must_be_callable() -> None:
    with pytest.raises(TypeError, match="before_retry must be callable or None, got int 3"):
        Retry(before_retry=3)  # type: ignore[arg-type]
