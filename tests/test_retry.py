"""Retry on a real loopback MockServer, time driven by a FakeClock."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http.backoff import Backoff
from resilient_http.classify import PERMANENT, TRANSIENT, Verdict
from resilient_http.events import Event
from resilient_http.retry import Attempt, Retry, RetryBudget
from resilient_http.testing import FakeClock, MockServer, Reply

pytestmark = pytest.mark.filterwarnings("error")


pytest_plugins = ("_autojump",)  # the fixtures: clock, server


def exact(clock: FakeClock, **kw: Any) -> Retry:
    """A Retry with jitter-free 1, 2, 4 … s backoff on the fake clock."""
    kw.setdefault("backoff", Backoff(1.0, jitter="none"))
    return Retry(clock=clock, **kw)


def session(*layers: rh.Layer, **kw: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=layers, **kw)


# -- the acceptance scenarios ---------------------------------------------------------------


async def test_503_503_200_gives_200_after_three_requests(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", 503, 503, Reply(200, json={"ok": True}))
    async with session(exact(clock)) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True}
    assert server.count("/x") == 3
    assert clock.sleeps == [1.0, 2.0]
    times = [r.time for r in server.requests_for("/x")]
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 2.0


async def test_sleeps_follow_a_seeded_jittered_backoff(
    server: MockServer, clock: FakeClock
) -> None:
    import random

    server.script("/x", 503, 503, 503, 200)
    retry = Retry(clock=clock, backoff=Backoff(0.5, random=random.Random(5).random))
    expect = Backoff(0.5, random=random.Random(5).random)
    async with session(retry) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
    assert clock.sleeps == [expect.delay(0), expect.delay(1), expect.delay(2)]


async def test_404_is_not_retried(server: MockServer, clock: FakeClock) -> None:
    async with session(exact(clock)) as s, s.get(server.url("/status/404")) as resp:
        assert resp.status == 404
    assert server.count("/status/404") == 1
    assert clock.sleeps == []


async def test_post_is_not_retried_without_idempotency_key(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/pay", 503, 200)
    async with session(exact(clock)) as s, s.post(server.url("/pay"), data=b"x") as resp:
        assert resp.status == 503
    assert server.count("/pay") == 1


async def test_post_with_idempotency_key_is_retried_with_the_same_key(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/pay", 503, 503, 200)
    async with (
        session(exact(clock)) as s,
        s.post(server.url("/pay"), data=b"amount=5", headers={"Idempotency-Key": "k-1"}) as resp,
    ):
        assert resp.status == 200
    seen = server.requests_for("/pay")
    assert [r.headers["Idempotency-Key"] for r in seen] == ["k-1"] * 3
    assert [r.body for r in seen] == [b"amount=5"] * 3


async def test_layer_adds_one_uuid4_key_reused_on_every_attempt(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/pay", 503, 503, 200)
    async with (
        session(exact(clock, idempotency_key=True)) as s,
        s.patch(server.url("/pay"), json={"a": 1}) as resp,
    ):
        assert resp.status == 200
    keys = {r.headers["Idempotency-Key"] for r in server.requests_for("/pay")}
    assert len(keys) == 1 and server.count("/pay") == 3
    assert uuid.UUID(keys.pop()).version == 4


async def test_get_gets_no_idempotency_key(server: MockServer, clock: FakeClock) -> None:
    async with session(exact(clock, idempotency_key=True)) as s, s.get(server.url("/ok")):
        pass
    assert "Idempotency-Key" not in server.requests_for("/ok")[0].headers


async def test_a_consumed_streamed_body_is_never_replayed(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/upload", 503, 200)

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk-1 "
        yield b"chunk-2"

    async with session(exact(clock)) as s:
        with pytest.raises(rh.BodyNotReplayable) as info:
            await s.put(server.url("/upload"), data=body())
    assert [r.body for r in server.requests_for("/upload")] == [b"chunk-1 chunk-2"]
    assert "503" in str(info.value)


async def test_retry_after_seconds_delays_the_next_attempt(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(503, headers={"Retry-After": "2"}), 200)
    async with session(exact(clock)) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
    first, second = (r.time for r in server.requests_for("/x"))
    assert second - first >= 2.0
    assert clock.sleeps == [2.0]


async def test_retry_after_http_date_is_honoured(server: MockServer, clock: FakeClock) -> None:
    from email.utils import formatdate

    when = formatdate(server.wall_time() + 7, usegmt=True)
    server.script("/x", Reply(429, headers={"Retry-After": when}), 200)
    async with session(exact(clock)) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
    # measured against the response's own Date header (the server's fake clock)
    assert clock.sleeps == [pytest.approx(7.0, abs=1.0)]


async def test_retry_after_beyond_max_gives_up_at_once(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(503, headers={"Retry-After": "3600"}), 200)
    events: list[Event] = []
    retry = exact(clock, max_retry_after=60, on_event=events.append)
    async with session(retry) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "3600"
    assert server.count("/x") == 1 and clock.sleeps == []
    gave_up = [e for e in events if e.name == "retry.gave_up"]
    assert "max_retry_after" in gave_up[0].detail["reason"]


async def test_rate_limited_429_waits_for_the_servers_hint(
    server: MockServer, clock: FakeClock
) -> None:
    server.rate_limited("/api", rate=1, per=3)
    async with session(exact(clock)) as s:
        for _ in range(2):
            async with s.get(server.url("/api")) as resp:
                assert resp.status == 200
    assert server.count("/api") == 3  # one 429 in between
    assert clock.sleeps == [3.0]


async def test_connection_reset_is_retried(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", Reply(reset=True), Reply(reset=True), 200)
    async with session(exact(clock)) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
    assert server.count("/x") == 3


async def test_truncated_body_is_retried(server: MockServer, clock: FakeClock) -> None:
    body = b"0123456789" * 100
    server.script("/x", Reply(200, body=body, truncate=True), Reply(200, body=body))
    async with session(exact(clock)) as s, s.get(server.url("/x")) as resp:
        assert await resp.read() == body
    assert server.count("/x") == 2


async def test_stream_mode_leaves_the_body_to_the_caller(
    server: MockServer, clock: FakeClock
) -> None:
    body = b"0123456789" * 100
    server.script("/x", Reply(200, body=body, truncate=True), Reply(200, body=body))
    async with session(exact(clock, stream=True)) as s, s.get(server.url("/x")) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert server.count("/x") == 1


async def test_retries_exhausted_carries_every_attempt(
    server: MockServer, clock: FakeClock
) -> None:
    server.script(
        "/x", Reply(reset=True), Reply(200, body=b"abcdef", truncate=True), Reply(reset=True)
    )
    async with session(exact(clock, attempts=3)) as s:
        with pytest.raises(rh.RetriesExhausted) as info:
            await s.get(server.url("/x"))
    err = info.value
    assert isinstance(err, aiohttp.ClientError)
    assert isinstance(err.__cause__, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError))
    assert [a.number for a in err.attempts] == [1, 2, 3]
    assert all(isinstance(a, Attempt) and a.outcome is TRANSIENT for a in err.attempts)
    assert isinstance(err.attempts[1].error, aiohttp.ClientPayloadError)
    assert [a.delay for a in err.attempts] == [1.0, 2.0, None]
    assert err.attempts[2].error is err.__cause__
    assert "failed after 3 attempts" in str(err)
    assert server.count("/x") == 3


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_still_the_error_users_catch(clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x"
    async with session(*rh.standard(clock=clock)) as s:
        try:
            await s.get(url)
        except aiohttp.ClientConnectorError as exc:  # as without the layers
            caught: BaseException = exc
        assert isinstance(caught, rh.RetriesExhausted)  # and as those who ask for it
        with pytest.raises(rh.RetriesExhausted) as info:
            await s.get(url)
    for err in (caught, info.value):
        assert isinstance(err, aiohttp.ClientConnectorError)
        assert isinstance(err.__cause__, aiohttp.ClientConnectorError)
        assert type(err.__cause__) is aiohttp.ClientConnectorError
        assert [a.number for a in err.attempts] == [1, 2, 3, 4]
        assert err.attempts[-1].error is err.__cause__
        assert all(isinstance(a, rh.Attempt) for a in err.attempts)
        assert str(err).startswith(f"GET {url} failed after 4 attempts")
        # the last error's own attributes are there
        assert err.host == "127.0.0.1" and err.os_error is err.__cause__.os_error
        assert err.errno == err.__cause__.errno is not None


def test_the_exhausted_error_pickles_as_itself() -> None:
    import pickle

    from resilient_http.errors import exhausted

    cause = aiohttp.ServerTimeoutError("read timed out")
    attempt = Attempt(1, TRANSIENT, "ServerTimeoutError", None, None, None)
    err = exhausted("GET / failed after 1 attempt", cause, [attempt])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert isinstance(back, rh.RetriesExhausted) and isinstance(back, asyncio.TimeoutError)
    assert str(back) == str(err) == "GET / failed after 1 attempt"
    assert back.attempts == (attempt,) and back.args == cause.args
    assert type(exhausted("again", aiohttp.ServerTimeoutError(), [])) is type(err)  # cached
    inner = exhausted("inner", cause, [])
    assert type(exhausted("outer", inner, [])) is rh.RetriesExhausted


async def test_a_final_503_behind_standard_is_returned(
    server: MockServer, clock: FakeClock
) -> None:
    async with session(*rh.standard(clock=clock)) as s, s.get(server.url("/status/503")) as r:
        assert r.status == 503
    assert server.count("/status/503") == 4


async def test_final_transient_response_passes_through(
    server: MockServer, clock: FakeClock
) -> None:
    async with session(exact(clock, attempts=3)) as s, s.get(server.url("/status/503")) as resp:
        assert resp.status == 503
        with pytest.raises(aiohttp.ClientResponseError):
            resp.raise_for_status()
    assert server.count("/status/503") == 3


async def test_raise_on_exhausted(server: MockServer, clock: FakeClock) -> None:
    async with session(exact(clock, attempts=2, raise_on_exhausted=True)) as s:
        with pytest.raises(rh.RetriesExhausted) as info:
            await s.get(server.url("/status/502"))
        assert [a.status for a in info.value.attempts] == [502, 502]
        assert info.value.__cause__ is None
        assert not s.connector._acquired  # type: ignore[union-attr]


async def test_raise_on_exhausted_does_not_raise_for_a_method_it_never_retries(
    server: MockServer, clock: FakeClock
) -> None:
    async with (
        session(exact(clock, raise_on_exhausted=True)) as s,
        s.post(server.url("/status/503"), data=b"x") as resp,
    ):
        assert resp.status == 503
    assert server.count("/status/503") == 1


async def test_through_wrap(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", 503, 200)
    async with aiohttp.ClientSession() as s:
        api = rh.wrap(s, exact(clock))
        async with api.get(server.url("/x")) as resp:
            assert resp.status == 200
    assert server.count("/x") == 2


# -- attempts mean requests on the wire -----------------------------------------------------


async def test_bare_aiohttp_sends_a_reset_request_twice(server: MockServer) -> None:
    """Why the layer must care: aiohttp re-runs the chain once on a reset by itself."""
    server.script("/reset", Reply(reset=True))
    async with aiohttp.ClientSession() as s:
        with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
            await s.get(server.url("/reset"))
    assert server.count("/reset") == 2


@pytest.mark.parametrize("attempts", [1, 2, 4])
async def test_attempts_are_requests_on_the_wire_against_a_resetting_server(
    server: MockServer, clock: FakeClock, attempts: int
) -> None:
    server.script("/reset", Reply(reset=True))
    inner_entries = 0

    class Count(rh.Layer):
        def enter(self, call: Any, i: int) -> None:
            nonlocal inner_entries
            inner_entries += 1

    async with session(exact(clock, attempts=attempts), Count()) as s:
        await (await s.get(server.url("/ok"))).release()  # a reused connection, as in life
        with pytest.raises(rh.RetriesExhausted) as info:
            await s.get(server.url("/reset"))
    assert server.count("/reset") == attempts
    assert inner_entries == attempts + 1  # an inner RateLimit would be entered once per attempt
    assert len(info.value.attempts) == attempts


async def test_a_reset_classified_permanent_is_still_not_resent_by_aiohttp(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/reset", Reply(reset=True))
    retry = exact(clock, classify=lambda outcome: PERMANENT)
    async with session(retry) as s:
        with pytest.raises(rh.RetriesExhausted):
            await s.get(server.url("/reset"))
    assert server.count("/reset") == 1


async def test_standard_stack_in_an_outage_retries_then_fails_fast(
    server: MockServer, clock: FakeClock
) -> None:
    """Retry outside the breaker: attempts count as the breaker's calls; once it opens,
    CircuitOpen is final (not retried, not wrapped) and nothing more reaches the server."""
    import random

    outcomes: list[str] = []
    retry = Retry(clock=clock, backoff=Backoff(random=random.Random(3).random))
    async with session(*rh.standard(clock=clock, retry=retry)) as s:
        for _ in range(30):
            try:
                async with s.get(server.url("/status/503")) as resp:
                    outcomes.append(str(resp.status))
            except rh.CircuitOpen:
                outcomes.append("open")
    # 5 calls x 4 attempts reach the breaker's minimum throughput (20) at 100 % failures.
    assert outcomes == ["503"] * 5 + ["open"] * 25
    assert server.count("/status/503") == 20


# -- deadlines ------------------------------------------------------------------------------


async def test_retry_after_past_the_outer_deadline_gives_up_at_once(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(503, headers={"Retry-After": "10"}), 200)
    async with (
        session(rh.Stack(rh.Timeout(5, clock=clock), exact(clock))) as s,
        s.get(server.url("/x")) as resp,
    ):
        assert resp.status == 503
    assert server.count("/x") == 1 and clock.sleeps == []


async def test_backoff_past_the_outer_deadline_gives_up(
    server: MockServer, clock: FakeClock
) -> None:
    # 503 at t=0, sleep 1 → t=1, 503, sleep 2 → t=3, 503, sleep 4 would end at 7 > 5.
    async with (
        session(rh.Stack(rh.Timeout(5, clock=clock), exact(clock))) as s,
        s.get(server.url("/status/503")) as resp,
    ):
        assert resp.status == 503
    assert server.count("/status/503") == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_retry_after_past_the_sessions_total_timeout_gives_up(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(503, headers={"Retry-After": "10"}), 200)
    timeout = aiohttp.ClientTimeout(total=5)
    async with session(exact(clock), timeout=timeout) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 503
    assert server.count("/x") == 1 and clock.sleeps == []


async def test_inner_attempt_timeout_is_retried(server: MockServer, clock: FakeClock) -> None:
    server.script("/slow", Reply(200, body=b"late", delay=30), Reply(200, body=b"fast"))
    stack = rh.Stack(exact(clock), rh.Timeout(1, clock=clock))
    async with session(stack) as s, s.get(server.url("/slow")) as resp:
        assert await resp.read() == b"fast"
    assert server.count("/slow") == 2


async def test_outer_deadline_during_an_attempt_is_not_retried(
    server: MockServer, clock: FakeClock
) -> None:
    server.script("/slow", Reply(200, delay=30))
    async with session(rh.Stack(rh.Timeout(2, clock=clock), exact(clock))) as s:
        with pytest.raises(rh.DeadlineExceeded) as info:
            await s.get(server.url("/slow"))
    assert info.value.timeout == 2
    assert server.count("/slow") == 1 and clock.sleeps == [30]  # only the server's own wait


async def test_cancellation_during_backoff_propagates_untouched(
    server: MockServer,
) -> None:
    clock = FakeClock()  # no autojump: the sleep stays pending until cancelled
    async with session(exact(clock)) as s:
        task = asyncio.ensure_future(s.get(server.url("/status/503")))
        for _ in range(2000):  # real I/O until the backoff sleep is pending (bounded)
            if clock.pending():
                break
            await asyncio.sleep(0.001)
        assert clock.pending()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert server.count("/status/503") == 1
        assert not s.connector._acquired  # type: ignore[union-attr]


# -- the budget -----------------------------------------------------------------------------


async def test_budget_caps_retries_in_an_outage(server: MockServer, clock: FakeClock) -> None:
    events: list[Event] = []
    retry = exact(clock, budget=RetryBudget(0.2, min_per_second=0), on_event=events.append)
    async with session(retry) as s:

        async def one() -> int:
            async with s.get(server.url("/status/503")) as resp:
                return resp.status

        statuses = await asyncio.gather(*(one() for _ in range(200)))
    assert set(statuses) == {503}
    assert server.count("/status/503") == 200 + 40
    assert sum(e.name == "retry.budget_exhausted" for e in events) >= 160


async def test_each_call_deposits_once_at_its_time_on_the_layers_clock(
    server: MockServer, clock: FakeClock
) -> None:
    budget = RetryBudget(0.5, min_per_second=0, window=2, slots=2)
    async with session(exact(clock, budget=budget)) as s:

        async def calls(n: int) -> None:
            for _ in range(n):
                async with s.get(server.url("/ok")) as resp:
                    assert resp.status == 200

        await calls(4)  # in the slot [t0, t0 + 1)
        await clock.advance(1.5)
        await calls(2)  # in the next slot
        assert budget.available(clock.now()) == 3  # half of 6 requests
        await clock.advance(0.5)
        assert budget.available(clock.now()) == 1  # the first slot's 4 have left the window


async def test_the_default_clock_is_the_monotonic_one(server: MockServer) -> None:
    budget = RetryBudget(1.0, min_per_second=0, window=10, slots=10)
    async with session(Retry(budget=budget)) as s:
        for _ in range(3):
            async with s.get(server.url("/ok")) as resp:
                assert resp.status == 200
    assert budget.available(time.monotonic()) == 3
    assert budget.available(time.monotonic() + 11) == 0


async def test_no_budget_multiplies_load_by_attempts(server: MockServer, clock: FakeClock) -> None:
    async with session(exact(clock, budget=None)) as s:
        for _ in range(10):
            async with s.get(server.url("/status/503")):
                pass
    assert server.count("/status/503") == 40


async def test_default_budget_outage_of_1000_requests(server: MockServer, clock: FakeClock) -> None:
    retry = Retry(clock=clock)  # the defaults: attempts=4, full jitter, budget 20 % + 10/s
    sem = asyncio.Semaphore(100)
    async with session(retry, connector=aiohttp.TCPConnector(limit=100)) as s:

        async def one() -> None:
            async with sem, s.get(server.url("/status/503")):
                pass

        await asyncio.gather(*(one() for _ in range(1000)))
    assert server.count("/status/503") / 1000 <= 1.3


# -- decorator mode -------------------------------------------------------------------------


async def test_decorator_retries_transient_exceptions(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", 503, 500, Reply(200, json={"id": 7}))

    @rh.resilient(exact(clock))
    async def fetch(s: aiohttp.ClientSession) -> Any:
        async with s.get(server.url("/x")) as resp:
            resp.raise_for_status()
            return await resp.json()

    async with aiohttp.ClientSession() as s:
        assert await fetch(s) == {"id": 7}
    assert server.count("/x") == 3


async def test_decorator_permanent_and_exhausted(clock: FakeClock) -> None:
    calls = 0

    @rh.resilient(exact(clock, attempts=3))
    async def flaky(kind: str) -> None:
        nonlocal calls
        calls += 1
        if kind == "perm":
            raise ValueError("bad input")
        raise ConnectionResetError("reset")

    with pytest.raises(ValueError):
        await flaky("perm")
    assert calls == 1
    calls = 0
    with pytest.raises(rh.RetriesExhausted) as info:
        await flaky("transient")
    assert calls == 3
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert "flaky" in str(info.value)


async def test_decorator_with_user_classifier_and_delay(clock: FakeClock) -> None:
    results = iter(["busy", "busy", "done"])

    def classify(outcome: Any) -> Any:
        return Verdict(TRANSIENT, 0.25, "busy") if outcome == "busy" else None

    @rh.resilient(Retry(clock=clock, classify=classify))
    async def poll() -> str:
        return next(results)

    assert await poll() == "done"
    assert clock.sleeps == [0.25, 0.25]


# -- options, events, hygiene ---------------------------------------------------------------


async def test_extra_statuses_and_methods(server: MockServer, clock: FakeClock) -> None:
    server.script("/x", 409, 200)
    async with session(exact(clock, statuses={409})) as s, s.get(server.url("/x")) as resp:
        assert resp.status == 200
    server.script("/y", 503, 200)
    async with session(exact(clock, methods={"GET"})) as s, s.delete(server.url("/y")) as resp:
        assert resp.status == 503


async def test_events_for_every_decision_are_redacted(
    server: MockServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server.script("/x", 503, 503)
    events: list[Event] = []
    with caplog.at_level(logging.DEBUG, logger="resilient_http"):
        async with (
            session(exact(clock, attempts=2, on_event=events.append)) as s,
            s.get(server.url("/x?api_key=SECRET&q=1")) as resp,
        ):
            assert resp.status == 503
    names = [e.name for e in events]
    assert names == ["retry.attempt", "retry.scheduled", "retry.attempt", "retry.gave_up"]
    scheduled = events[1]
    assert scheduled.detail == {"attempt": 1, "delay": 1.0, "reason": "status 503"}
    assert events[3].detail["reason"] == "no attempts left"
    assert all("SECRET" not in (e.url or "") for e in events)
    assert "SECRET" not in caplog.text and "retry.gave_up" in caplog.text


async def test_a_level_change_between_calls_shows_the_next_calls_events(
    server: MockServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with session(exact(clock)) as s:
        with caplog.at_level(logging.INFO, logger="resilient_http"):
            async with s.get(server.url("/ok")) as resp:
                assert resp.status == 200
        assert "retry.attempt" not in caplog.text
        with caplog.at_level(logging.DEBUG, logger="resilient_http"):
            async with s.get(server.url("/ok")) as resp:
                assert resp.status == 200
        assert "retry.attempt" in caplog.text


async def test_decorated_results_are_judged_by_their_status_if_they_have_one(
    clock: FakeClock,
) -> None:
    class Answer:
        def __init__(self, status: int) -> None:
            self.status = status

    answers = iter([Answer(503), Answer(200)])
    values = iter([{"status": 503}, "done"])

    @rh.resilient(exact(clock))
    async def with_status() -> Answer:
        return next(answers)

    @rh.resilient(exact(clock))
    async def without_status() -> Any:
        return next(values)

    assert (await with_status()).status == 200
    assert clock.sleeps == [1.0]
    assert await without_status() == {"status": 503}  # a mapping, not a response: a success


async def test_connections_are_released_after_many_retries_and_cancellations(
    server: MockServer, clock: FakeClock
) -> None:
    server.random_faults("/flaky", error_ratio=0.3, reset_ratio=0.05, truncate_ratio=0.05, seed=1)
    retry = Retry(clock=clock, budget=None)
    async with session(retry, connector=aiohttp.TCPConnector(limit=20)) as s:

        async def one(k: int) -> None:
            try:
                async with s.get(server.url("/flaky")) as resp:
                    await resp.read()
            except aiohttp.ClientError:
                pass

        for batch in range(50):
            tasks = [asyncio.ensure_future(one(k)) for k in range(200)]
            await asyncio.sleep(0)
            for t in tasks[batch % 7 :: 9]:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert not s.connector._acquired  # type: ignore[union-attr]
    assert server.count("/flaky") >= 9000


async def test_success_path_creates_no_reference_cycles(server: MockServer) -> None:
    async def garbage(middlewares: tuple[Any, ...]) -> int:
        async with aiohttp.ClientSession(middlewares=middlewares) as s:
            for _ in range(20):  # warm up pools and caches
                async with s.get(server.url("/ok")) as resp:
                    await resp.read()
            gc.collect()
            gc.disable()
            try:
                for _ in range(300):
                    async with s.get(server.url("/ok")) as resp:
                        await resp.read()
                return gc.collect()
            finally:
                gc.enable()

    bare = await garbage(())
    layered = await garbage((Retry(),))
    assert layered <= bare + 5


async def test_history_is_dropped_after_a_success_that_needed_retries(
    server: MockServer, clock: FakeClock
) -> None:
    """A reset then a 200: the reset's traceback must not stay in a cycle through the call's
    state (kept, it would leave ~40 more objects for the collector than bare aiohttp, which
    handles this very case by its own re-send)."""

    async def garbage(middlewares: tuple[Any, ...], path: str) -> int:
        server.script(path, Reply(reset=True), 200)
        async with aiohttp.ClientSession(middlewares=middlewares) as s:
            async with s.get(server.url("/ok")) as resp:  # a pooled connection, as in life
                await resp.read()
            gc.collect()
            gc.disable()
            try:
                async with s.get(server.url(path)) as resp:
                    assert resp.status == 200
                return gc.collect()
            finally:
                gc.enable()

    bare = await garbage((), "/bare")
    layered = await garbage((exact(clock),), "/layered")
    assert server.count("/bare") == server.count("/layered") == 2
    assert layered <= bare + 5


def test_defaults_and_repr() -> None:
    r = Retry()
    assert r.attempts == 4 and r.reads_body and isinstance(r.budget, RetryBudget)
    assert r.max_retry_after == 60.0
    assert r.methods == {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
    assert repr(r) == "Retry(attempts=4, backoff=Backoff(0.1, multiplier=2, cap=10, jitter='full'))"
    assert Retry(stream=True).reads_body is False
    assert Retry(max_retry_after=timedelta(minutes=2)).max_retry_after == 120.0
    assert Retry(budget=None).budget is None


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"attempts": 0}, ValueError, "attempts must be >= 1"),
        ({"attempts": 2.5}, TypeError, "attempts must be an int"),
        ({"backoff": 1.0}, TypeError, "backoff must be a Backoff"),
        ({"classify": "yes"}, TypeError, "classify must be callable"),
        ({"statuses": "503"}, TypeError, "statuses must be an iterable of ints"),
        ({"statuses": [42]}, ValueError, "statuses must be HTTP status codes"),
        ({"exceptions": [int]}, TypeError, "exceptions must be Exception subclasses"),
        ({"methods": "GET"}, TypeError, "methods must be an iterable"),
        ({"methods": ["GE T"]}, ValueError, "methods must be HTTP method names"),
        ({"max_retry_after": -1}, ValueError, "max_retry_after must be >= 0"),
        ({"budget": 0.2}, TypeError, "budget must be a RetryBudget or None"),
        ({"idempotency_key": "yes"}, TypeError, "idempotency_key must be a bool"),
        ({"raise_on_exhausted": 1}, TypeError, "raise_on_exhausted must be a bool"),
        ({"stream": None}, TypeError, "stream must be a bool"),
        ({"clock": object()}, TypeError, "clock must be a Clock"),
        ({"on_event": [1]}, TypeError, "on_event must be a callable"),
    ],
)
def test_validation(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        Retry(**kwargs)
