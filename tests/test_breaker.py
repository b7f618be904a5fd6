"""CircuitBreaker on a real MockServer, time driven by a FakeClock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from _circuit_model import Model, ModelTicket
from _layers import Refuse
from _polling import until
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from yarl import URL

import resilient_http as rh
from resilient_http.events import Event
from resilient_http.testing import FakeClock, MockServer, Reply

CLOSED = rh.CircuitState.CLOSED
OPEN = rh.CircuitState.OPEN
HALF_OPEN = rh.CircuitState.HALF_OPEN
ISOLATED = rh.CircuitState.ISOLATED

MODES = ["alone", "stack", "wrap"]


@asynccontextmanager
async def client(mode: str, breaker: rh.CircuitBreaker, clock: FakeClock) -> AsyncIterator[Any]:
    """A client whose requests go through ``breaker``: alone in ``middlewares=``, inside a
    ``Stack`` with other layers, or through ``wrap()``."""
    if mode == "alone":
        async with aiohttp.ClientSession(middlewares=(breaker,)) as session:
            yield session
    elif mode == "stack":
        stack = rh.Stack(rh.Timeout(60, clock=clock), breaker, rh.Timeout(30, clock=clock))
        async with aiohttp.ClientSession(middlewares=(stack,)) as session:
            yield session
    else:
        async with aiohttp.ClientSession() as session:
            yield rh.wrap(session, breaker)


async def status(c: Any, url: Any) -> int:
    async with c.get(url) as resp:
        await resp.read()
        return int(resp.status)


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events if e.name != "breaker.rejected"]


# -- configuration ----------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    b = rh.CircuitBreaker()
    assert (b.failure_ratio, b.min_throughput, b.window, b.break_for, b.half_open_probes) == (
        0.5,
        20,
        30.0,
        5.0,
        1,
    )
    assert b.key is None and b.is_failure is None
    assert repr(b) == (
        "CircuitBreaker(failure_ratio=0.5, min_throughput=20, window=30, break_for=5, "
        "half_open_probes=1)"
    )
    b = rh.CircuitBreaker(window=timedelta(minutes=1), break_for=timedelta(seconds=2))
    assert (b.window, b.break_for) == (60.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"failure_ratio": 0}, ValueError, "failure_ratio"),
        ({"failure_ratio": 1.5}, ValueError, "failure_ratio"),
        ({"failure_ratio": "half"}, TypeError, "failure_ratio"),
        ({"min_throughput": 0}, ValueError, "min_throughput"),
        ({"min_throughput": 2.5}, TypeError, "min_throughput"),
        ({"window": 0}, ValueError, "window"),
        ({"window": float("inf")}, ValueError, "window"),
        ({"break_for": -1}, ValueError, "break_for"),
        ({"break_for": "5s"}, TypeError, "break_for"),
        ({"half_open_probes": 0}, ValueError, "half_open_probes"),
        ({"key": 42}, TypeError, "key"),
        ({"is_failure": "5xx"}, TypeError, "is_failure"),
        ({"clock": 1.0}, TypeError, "clock"),
        ({"on_event": [print, 3]}, TypeError, "on_event"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        rh.CircuitBreaker(**kwargs)


# -- the state machine over real requests -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_opens_at_the_ratio_fails_fast_probes_and_closes(mode: str) -> None:
    clock = FakeClock()
    events: list[Event] = []
    breaker = rh.CircuitBreaker(
        0.5, min_throughput=4, break_for=5, clock=clock, on_event=events.append
    )
    async with MockServer() as server, client(mode, breaker, clock) as c:
        # 503, 200, 503: 2 of 3 failed, but fewer than min_throughput calls.
        server.script("/flaky", 503, 200, 503, 200, 503, 200)
        assert [await status(c, server.url("/flaky")) for _ in range(3)] == [503, 200, 503]
        assert breaker.state(server.url("/")) is CLOSED
        assert await status(c, server.url("/flaky")) == 200  # 2 of 4, but a success never opens
        assert breaker.state(server.url("/")) is CLOSED
        assert await status(c, server.url("/flaky")) == 503  # 3 of 5 >= 0.5: open
        assert breaker.state(server.url("/")) is OPEN
        assert server.count() == 5

        # Open: fails fast, nothing reaches the server, whatever the path on that origin.
        for path in ("/flaky", "/ok", "/status/200"):
            with pytest.raises(rh.CircuitOpen) as info:
                await status(c, server.url(path))
            assert info.value.retry_in == 5.0
        assert server.count() == 5
        assert isinstance(info.value, aiohttp.ClientConnectionError)

        await clock.advance(4.5)
        with pytest.raises(rh.CircuitOpen) as info:
            await status(c, server.url("/ok"))
        assert info.value.retry_in == pytest.approx(0.5)
        assert breaker.state(server.url("/")) is OPEN

        await clock.advance(0.5)
        assert breaker.state(server.url("/")) is HALF_OPEN
        assert await status(c, server.url("/flaky")) == 200  # the probe succeeds: closed
        assert breaker.state(server.url("/")) is CLOSED
        assert await status(c, server.url("/ok")) == 200
        assert server.count() == 7

    assert names(events) == ["breaker.opened", "breaker.half_opened", "breaker.closed"]
    opened = events[0]
    assert opened.layer == "CircuitBreaker"
    assert opened.detail["failures"] == 3 and opened.detail["throughput"] == 5
    assert opened.detail["cause"] == "503" and opened.detail["break_for"] == 5.0
    assert opened.detail["key"] == str(server.url("/")).rstrip("/")
    assert events[-1].detail["reason"] == "probe succeeded"
    rejected = [e for e in events if e.name == "breaker.rejected"]
    assert len(rejected) == 4 and rejected[0].detail["state"] == "open"


@pytest.mark.parametrize("mode", MODES)
async def test_a_failed_probe_reopens_for_break_for(mode: str) -> None:
    clock = FakeClock()
    events: list[Event] = []
    breaker = rh.CircuitBreaker(
        min_throughput=2, break_for=3, clock=clock, on_event=events.append
    )
    async with MockServer() as server, client(mode, breaker, clock) as c:
        for _ in range(2):
            assert await status(c, server.url("/status/500")) == 500
        assert breaker.state(server.url("/")) is OPEN
        await clock.advance(3)
        assert await status(c, server.url("/status/503")) == 503  # the probe fails
        assert breaker.state(server.url("/")) is OPEN
        with pytest.raises(rh.CircuitOpen) as info:
            await status(c, server.url("/ok"))
        assert info.value.retry_in == 3.0
        assert server.count() == 3
        await clock.advance(3)
        assert await status(c, server.url("/ok")) == 200
        assert breaker.state(server.url("/")) is CLOSED
    assert names(events) == [
        "breaker.opened",
        "breaker.half_opened",
        "breaker.opened",
        "breaker.half_opened",
        "breaker.closed",
    ]
    assert events[2].detail["reason"] == "probe failed"


@pytest.mark.parametrize("mode", MODES)
async def test_half_open_lets_only_the_probe_through_and_a_cancelled_probe_frees_its_slot(
    mode: str,
) -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, break_for=5, clock=clock)
    async with MockServer(clock=clock) as server, client(mode, breaker, clock) as c:
        server.script("/slow", Reply(200, delay=60))
        assert await status(c, server.url("/status/502")) == 502
        await clock.advance(5)
        probe = asyncio.create_task(status(c, server.url("/slow")))
        await server.wait_for_requests(path="/slow")
        # The one probe slot is taken: others fail fast while it runs.
        with pytest.raises(rh.CircuitOpen, match="half-open") as info:
            await status(c, server.url("/ok"))
        assert info.value.retry_in == 5.0
        assert server.count("/ok") == 0
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        # Cancelled: neither success nor failure; the slot is free again.
        assert breaker.state(server.url("/")) is HALF_OPEN
        assert await status(c, server.url("/ok")) == 200
        assert breaker.state(server.url("/")) is CLOSED


async def test_several_probes_at_once_when_configured() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, break_for=1, half_open_probes=2, clock=clock)
    async with MockServer(clock=clock) as server, client("alone", breaker, clock) as c:
        server.script("/slow", Reply(200, delay=10))
        assert await status(c, server.url("/status/504")) == 504
        await clock.advance(1)
        probes = [asyncio.create_task(status(c, server.url("/slow"))) for _ in range(2)]
        await server.wait_for_requests(2, path="/slow")
        with pytest.raises(rh.CircuitOpen):
            await status(c, server.url("/ok"))
        await clock.advance(10)
        assert await asyncio.gather(*probes) == [200, 200]
        assert breaker.state(server.url("/")) is CLOSED
        assert server.count() == 3


@pytest.mark.parametrize("mode", MODES)
async def test_separate_hosts_have_separate_circuits(mode: str) -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=2, clock=clock)
    async with (
        MockServer() as a,
        MockServer() as b,
        client(mode, breaker, clock) as c,
    ):
        for _ in range(2):
            await status(c, a.url("/status/503"))
        with pytest.raises(rh.CircuitOpen):
            await status(c, a.url("/ok"))
        assert await status(c, b.url("/ok")) == 200
        assert breaker.state(a.url("/x")) is OPEN
        assert breaker.state(str(b.url("/x?y=1"))) is CLOSED
        assert breaker.states() == {
            str(a.origin).rstrip("/"): OPEN,
            str(b.origin).rstrip("/"): CLOSED,
        }


async def test_the_default_port_and_the_explicit_one_share_a_circuit() -> None:
    breaker = rh.CircuitBreaker(min_throughput=1)
    breaker.isolate("http://example.com:80/a")
    assert breaker.state("http://example.com/b") is ISOLATED
    assert breaker.state("http://EXAMPLE.com:80") is ISOLATED
    assert breaker.state("https://example.com") is CLOSED
    assert breaker.state("http://example.com:8080") is CLOSED


async def test_old_failures_leave_the_window() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=4, window=10, clock=clock)
    async with MockServer() as server, client("alone", breaker, clock) as c:
        for _ in range(3):
            await status(c, server.url("/status/503"))
        await clock.advance(10)
        await status(c, server.url("/status/503"))  # 1 of 1 in the window now
        assert breaker.state(server.url("/")) is CLOSED
        for _ in range(3):
            await status(c, server.url("/status/503"))
        assert breaker.state(server.url("/")) is OPEN


async def test_a_success_at_a_bucket_end_counts_in_the_next_bucket() -> None:
    # window 10 s in buckets of 1 s; the second success lands exactly on bucket 0's end
    clock = FakeClock()
    breaker = rh.CircuitBreaker(0.75, min_throughput=3, window=10, clock=clock)
    async with MockServer() as server, client("alone", breaker, clock) as c:
        await status(c, server.url("/ok"))  # bucket 0, the short way
        await clock.advance(1)
        await status(c, server.url("/ok"))  # bucket 1, the long way (a new bucket)
        await status(c, server.url("/ok"))  # bucket 1, the short way again
        await clock.advance(9.5)  # t=10.5: bucket 0 left the window, bucket 1 did not
        for _ in range(3):
            await status(c, server.url("/status/503"))
        assert breaker.state(server.url("/")) is CLOSED  # 3 of 5 < 0.75
        await clock.advance(0.5)  # t=11: bucket 1 left too
        await status(c, server.url("/status/503"))
        assert breaker.state(server.url("/")) is OPEN  # 4 of 4


async def test_pruned_origins_are_looked_up_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    import resilient_http.breaker as breaker_module

    monkeypatch.setattr(breaker_module, "_PRUNE_AT", 2)  # one origin's keys: (scheme, netloc), URL
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=2, clock=clock)
    async with MockServer() as a, MockServer() as b, client("alone", breaker, clock) as c:
        await status(c, a.url("/ok"))  # a's circuit: idle, pruned when b's is created
        await status(c, b.url("/status/503"))  # b's window holds a failure: kept
        assert len(breaker._circuits) == 2 and breaker.state(b.url("/")) is CLOSED
        for _ in range(2):
            await status(c, a.url("/status/503"))  # counted by a's new circuit, not the old one
        assert breaker.state(a.url("/")) is OPEN
        with pytest.raises(rh.CircuitOpen):
            await status(c, a.url("/ok"))


# -- the hooks against the plain model of one circuit ------------------------------------------


class ManualClock:
    """A clock set by hand, for the synchronous state machine below."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the breaker never sleeps")

    def call_at(self, when: float, callback: Any, *args: Any) -> Any:
        raise AssertionError("the breaker arms no timers")


def work() -> None:
    """In decorator mode the decorated function is the circuit's key."""


SLOT = 5  # the breaker's slot in the call list, as the engine gives it


class BreakerMachine(RuleBasedStateMachine):
    """The breaker's hooks, called as the engine calls them in decorator mode, against the
    plain model: exit's inlined short way must count exactly what the long way would."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.live: list[tuple[list[Any], ModelTicket]] = []

    @initialize(
        ratio=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        min_throughput=st.integers(1, 5),
        width=st.sampled_from([0.25, 0.5, 2.0]),  # dyadic: exact bucket arithmetic
        break_for=st.sampled_from([1.0, 2.5, 8.0]),
        probes=st.integers(1, 3),
    )
    def setup(
        self, ratio: float, min_throughput: int, width: float, break_for: float, probes: int
    ) -> None:
        self.b = rh.CircuitBreaker(
            ratio,
            min_throughput=min_throughput,
            window=width * 10,  # the breaker's 10 buckets
            break_for=break_for,
            half_open_probes=probes,
            clock=self.clock,
        )
        self.m = Model(ratio, min_throughput, 10, break_for, probes, width)

    @rule(buckets=st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 9.0, 10.0, 40.0]))
    def advance(self, buckets: float) -> None:
        self.clock.t += buckets * self.m.width

    @rule()
    def to_the_next_bucket(self) -> None:
        width = self.m.width
        self.clock.t = (self.clock.t // width + 1) * width  # exactly onto a bucket's end

    @rule()
    def admit(self) -> None:
        call: list[Any] = [None, work, (), None, None, None]
        expected = self.m.admit(self.clock.t)
        try:
            step = self.b.enter(call, SLOT)
        except rh.CircuitOpen:
            assert expected is None
        else:
            assert step is None and expected is not None
            self.live.append((call, expected))

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "success", "failure", "abort"]))
    def complete(self, data: st.DataObject, outcome: str) -> None:
        call, mt = self.live.pop(data.draw(st.integers(0, len(self.live) - 1)))
        if outcome == "success":
            step = self.b.exit(call, SLOT, "result", None)
        elif outcome == "failure":
            step = self.b.exit(call, SLOT, None, ConnectionResetError())
        else:
            step = self.b.exit(call, SLOT, None, asyncio.CancelledError())
        assert step is None
        self.m.complete(mt, outcome, self.clock.t)

    @rule()
    def isolate(self) -> None:
        self.b.isolate(work)
        self.m.new_period(ISOLATED)

    @rule()
    def reset(self) -> None:
        self.b.reset(work)
        if work in self.b._circuits:  # else nothing to reset: closed and empty already
            self.m.new_period(CLOSED)

    @invariant()
    def same_state(self) -> None:
        if hasattr(self, "b"):
            now = self.clock.t
            assert self.b.state(work) is self.m.state_at(now)
            circuit = self.b._circuits.get(work)
            assert (0 if circuit is None else circuit.in_flight) == self.m.live_probes()
            if circuit is not None and self.m.state is CLOSED:
                self.m.check_window(circuit, now)


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60)
test_breaker_machine = BreakerMachine.TestCase


# -- what counts as a failure ----------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 501, 505, 404, 400, 200, 304])
async def test_statuses_that_are_not_failures(code: str) -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock)
    async with MockServer() as server, client("alone", breaker, clock) as c:
        for _ in range(5):
            assert await status(c, server.url(f"/status/{code}")) == code
        assert breaker.state(server.url("/")) is CLOSED


@pytest.mark.parametrize("code", [500, 502, 503, 504, 507, 599])
async def test_server_errors_are_failures(code: int) -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock)
    async with MockServer() as server, client("alone", breaker, clock) as c:
        assert await status(c, server.url(f"/status/{code}")) == code
        assert breaker.state(server.url("/")) is OPEN


async def test_a_connection_reset_is_a_failure() -> None:
    clock = FakeClock()
    events: list[Event] = []
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock, on_event=events.append)
    async with MockServer() as server, client("alone", breaker, clock) as c:
        server.script("/reset", Reply(reset=True))
        with pytest.raises(aiohttp.ClientError):
            await status(c, server.url("/reset"))
        assert breaker.state(server.url("/")) is OPEN
        assert server.count("/reset") == 1
    assert events[0].detail["cause"] in {"ServerDisconnectedError", "ClientOSError"}


async def test_a_refused_connection_is_a_failure() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=2, clock=clock)
    async with MockServer() as server:
        url = server.url("/ok")
    async with client("alone", breaker, clock) as c:  # nobody listens on that port now
        for _ in range(2):
            with pytest.raises(aiohttp.ClientConnectorError):
                await status(c, url)
        with pytest.raises(rh.CircuitOpen):
            await status(c, url)


async def run_into_a_one_second_timeout(clock: FakeClock, stack: rh.Stack) -> MockServer:
    """One request through ``stack`` (which holds a 1 s Timeout) to a server that answers
    after 5 s; advance fake time 1 s: the call raises DeadlineExceeded. Returns the server,
    closed by then."""
    async with MockServer(clock=clock) as server:
        server.script("/slow", Reply(200, delay=5))
        async with aiohttp.ClientSession(middlewares=(stack,)) as c:
            task = asyncio.create_task(status(c, server.url("/slow")))
            await server.wait_for_requests(path="/slow")
            await clock.advance(1)
            with pytest.raises(rh.DeadlineExceeded):
                await task
    return server


async def test_an_attempt_timeout_inside_is_a_failure() -> None:
    clock = FakeClock()
    events: list[Event] = []
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock, on_event=events.append)
    server = await run_into_a_one_second_timeout(
        clock, rh.Stack(breaker, rh.Timeout(1, clock=clock)))
    assert breaker.state(server.url("/")) is OPEN
    assert events[0].detail["cause"] == "DeadlineExceeded"


async def test_a_total_timeout_outside_is_not_a_failure() -> None:
    # The caller's own deadline ran out: the breaker sees a cancellation, not a failure.
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock)
    server = await run_into_a_one_second_timeout(
        clock, rh.Stack(rh.Timeout(1, clock=clock), breaker))
    assert breaker.state(server.url("/")) is CLOSED


async def test_a_truncated_body_is_a_failure_when_the_stack_reads_the_body() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock)
    stack = rh.Stack(breaker, rh.Timeout(10, clock=clock))
    async with MockServer() as server, aiohttp.ClientSession(middlewares=(stack,)) as c:
        server.script("/cut", Reply(200, body=b"x" * 100, truncate=True))
        with pytest.raises(aiohttp.ClientPayloadError):
            await status(c, server.url("/cut"))
        assert breaker.state(server.url("/")) is OPEN


async def test_a_call_refused_by_an_inner_layer_is_neither_success_nor_failure() -> None:
    # An inner layer (a rate limit, another breaker) refusing before anything was sent says
    # nothing about the host: it must not close a half-open circuit nor dilute the window.
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=2, break_for=5, clock=clock)
    async with (
        MockServer() as server,
        aiohttp.ClientSession(middlewares=(breaker,)) as direct,
        aiohttp.ClientSession(middlewares=(rh.Stack(breaker, Refuse()),)) as refused,
    ):
        assert await status(direct, server.url("/status/503")) == 503
        for _ in range(5):
            with pytest.raises(rh.CircuitOpen, match="refused"):
                await status(refused, server.url("/ok"))
        assert await status(direct, server.url("/status/503")) == 503
        assert breaker.state(server.url("/")) is OPEN  # 2 of 2, the refusals not counted
        await clock.advance(5)
        with pytest.raises(rh.CircuitOpen, match="refused"):
            await status(refused, server.url("/ok"))  # took the probe slot, then gave it back
        assert breaker.state(server.url("/")) is HALF_OPEN
        assert await status(direct, server.url("/ok")) == 200
        assert breaker.state(server.url("/")) is CLOSED
        assert server.count() == 3


@pytest.mark.parametrize("mode", MODES)
async def test_a_bare_host_or_host_port_means_every_circuit_of_that_host(mode: str) -> None:
    breaker = rh.CircuitBreaker(min_throughput=1)
    clock = FakeClock()
    async with MockServer() as a, MockServer() as b, client(mode, breaker, clock) as c:
        a_port, b_port = a.url("/").port, b.url("/").port
        assert await status(c, a.url("/ok")) == 200 and await status(c, b.url("/ok")) == 200
        breaker.isolate(f"127.0.0.1:{a_port}")
        assert breaker.state(f"127.0.0.1:{a_port}") is ISOLATED
        assert breaker.state(a.url("/x")) is ISOLATED
        assert breaker.state(f"127.0.0.1:{b_port}") is CLOSED
        assert breaker.state("127.0.0.1") is ISOLATED  # the worst of the host's circuits
        with pytest.raises(rh.CircuitOpen):
            await status(c, a.url("/ok"))
        assert await status(c, b.url("/ok")) == 200
        breaker.reset(f"127.0.0.1:{a_port}")
        assert breaker.state("127.0.0.1") is CLOSED
        assert await status(c, a.url("/ok")) == 200
        # A bare host: every port, and circuits created later for it, until reset(host).
        breaker.isolate("127.0.0.1")
        assert breaker.state(b.url("/")) is ISOLATED
        assert breaker.state("https://127.0.0.1:1") is ISOLATED  # no circuit yet
        for server in (a, b):
            with pytest.raises(rh.CircuitOpen):
                await status(c, server.url("/ok"))
        async with MockServer() as later:
            with pytest.raises(rh.CircuitOpen):
                await status(c, later.url("/ok"))
            breaker.reset("127.0.0.1")
            assert await status(c, later.url("/ok")) == 200
        assert await status(c, a.url("/ok")) == 200
        assert breaker.states() and set(breaker.states().values()) == {CLOSED}


def test_a_host_key_matches_default_ports_and_nothing_else_is_accepted() -> None:
    breaker = rh.CircuitBreaker()
    breaker.isolate("API.example.com:443")
    assert breaker.state("https://api.example.com/v1") is ISOLATED
    assert breaker.state("http://api.example.com") is CLOSED
    assert breaker.state("api.example.com") is ISOLATED
    assert breaker.state("api.example.com:80") is CLOSED
    breaker.isolate("[::1]:8080")
    assert breaker.state("http://[::1]:8080/") is ISOLATED
    for bad in ("not a host", "api.example.com/v1", "user@host", "h:99999", "", "h:"):
        for method in (breaker.state, breaker.isolate, breaker.reset):
            with pytest.raises(ValueError, match="host:port"):
                method(bad)
    breaker.reset()
    assert breaker.state("api.example.com") is CLOSED
    # With a custom key, a string is one of that key's values, not a host.
    named = rh.CircuitBreaker(key=lambda request: request.url.host)
    named.isolate("api.example.com")
    assert named.state("api.example.com") is ISOLATED
    assert named.state("not a host") is CLOSED


async def test_a_custom_predicate_and_a_custom_key() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(
        min_throughput=2,
        clock=clock,
        key=lambda request: request.url.path.split("/")[1],
        is_failure=lambda resp, error: error is not None or resp.status == 429,
    )
    async with MockServer() as server, client("alone", breaker, clock) as c:
        server.script("/a/x", 429)
        for _ in range(2):
            assert await status(c, server.url("/a/x")) == 429
        with pytest.raises(rh.CircuitOpen):
            await status(c, server.url("/a/y"))
        assert await status(c, server.url("/anything/z")) == 200  # another key
        assert breaker.state("a") is OPEN
        assert breaker.state("anything") is CLOSED


async def test_a_predicate_that_raises_frees_the_probe_slot_and_the_connection() -> None:
    clock = FakeClock()
    broken = [False]

    def is_failure(resp: Any, error: BaseException | None) -> bool:
        if broken[0]:
            raise RuntimeError("predicate bug")
        return error is not None or resp.status >= 500

    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock, is_failure=is_failure)
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        MockServer(clock=clock) as server,
        aiohttp.ClientSession(connector=connector, middlewares=(breaker,)) as c,
    ):
        # A body still dripping: its connection stays busy until the response is released.
        server.script("/drip", Reply(200, body=b"x" * 100, drip=(10, 1.0)))
        await status(c, server.url("/status/500"))
        await clock.advance(5)
        broken[0] = True
        with pytest.raises(RuntimeError, match="predicate bug"):
            await status(c, server.url("/drip"))
        broken[0] = False
        assert breaker.state(server.url("/")) is HALF_OPEN  # the slot was given back
        # limit=1: this would hang if the dropped response still held the connection.
        assert await asyncio.wait_for(status(c, server.url("/ok")), 2) == 200
        assert breaker.state(server.url("/")) is CLOSED


# -- decorator mode ---------------------------------------------------------------------------


async def test_decorator_one_circuit_per_function() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=2, break_for=5, clock=clock)
    async with MockServer() as server, aiohttp.ClientSession() as session:

        @rh.resilient(breaker)
        async def failing() -> bytes:
            async with session.get(server.url("/status/503")) as resp:
                resp.raise_for_status()
                return await resp.read()

        @rh.resilient(breaker)
        async def fine() -> bytes:
            async with session.get(server.url("/ok")) as resp:
                resp.raise_for_status()
                return await resp.read()

        for _ in range(2):
            with pytest.raises(aiohttp.ClientResponseError):
                await failing()
        with pytest.raises(rh.CircuitOpen, match="failing"):
            await failing()
        assert server.count("/status/503") == 2  # the function did not run
        assert await fine() == b"ok"
        assert breaker.state(failing) is OPEN
        assert breaker.state(fine) is CLOSED
        await clock.advance(5)
        with pytest.raises(aiohttp.ClientResponseError):
            await failing()  # the probe fails
        assert breaker.state(failing) is OPEN
        breaker.reset(failing)
        assert breaker.state(failing) is CLOSED


async def test_decorator_with_a_key_shares_or_splits_circuits() -> None:
    clock = FakeClock()
    shared = rh.CircuitBreaker(min_throughput=1, clock=clock, key="payments")
    by_arg = rh.CircuitBreaker(min_throughput=1, clock=clock, key=lambda region: region)

    @rh.resilient(shared)
    async def charge() -> None:
        raise aiohttp.ServerDisconnectedError()

    @rh.resilient(shared)
    async def refund() -> str:
        return "refunded"

    @rh.resilient(by_arg)
    async def regional(region: str) -> str:
        if region == "eu":
            raise asyncio.TimeoutError()
        return region

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await charge()
    with pytest.raises(rh.CircuitOpen, match="payments"):
        await refund()
    with pytest.raises(asyncio.TimeoutError):
        await regional("eu")
    with pytest.raises(rh.CircuitOpen):
        await regional("eu")
    assert await regional("us") == "us"
    assert by_arg.state("eu") is OPEN and by_arg.state("us") is CLOSED


async def test_decorator_cancellation_is_neither_success_nor_failure() -> None:
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=1, break_for=1, clock=clock)
    gate = asyncio.Event()
    calls = 0

    @rh.resilient(breaker)
    async def work(fail: bool) -> str:
        nonlocal calls
        calls += 1
        if fail:
            raise ConnectionRefusedError()
        await gate.wait()
        return "done"

    with pytest.raises(ConnectionRefusedError):
        await work(True)
    await clock.advance(1)
    probe = asyncio.create_task(work(False))
    await until(lambda: calls == 2)
    with pytest.raises(rh.CircuitOpen):
        await work(False)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state(work) is HALF_OPEN
    gate.set()
    assert await work(False) == "done"
    assert breaker.state(work) is CLOSED


# -- manual control and events ---------------------------------------------------------------------


async def test_isolate_and_reset_by_key_and_for_all() -> None:
    clock = FakeClock()
    events: list[Event] = []
    breaker = rh.CircuitBreaker(clock=clock, on_event=events.append)
    async with (
        MockServer() as a,
        MockServer() as b,
        MockServer() as fresh,
        client("alone", breaker, clock) as c,
    ):
        assert await status(c, a.url("/ok")) == 200
        breaker.isolate(a.url("/"))
        with pytest.raises(rh.CircuitOpen, match="isolated") as info:
            await status(c, a.url("/ok"))
        assert info.value.retry_in is None
        await clock.advance(3600)
        with pytest.raises(rh.CircuitOpen):
            await status(c, a.url("/ok"))  # isolation does not time out
        assert await status(c, b.url("/ok")) == 200
        breaker.reset(a.url("/"))
        assert await status(c, a.url("/ok")) == 200

        breaker.isolate()  # every circuit, and the ones created later
        assert breaker.state(a.url("/")) is ISOLATED
        assert breaker.state("http://never.seen") is ISOLATED
        for server in (a, b, fresh):
            with pytest.raises(rh.CircuitOpen):
                await status(c, server.url("/ok"))
        assert (a.count(), b.count(), fresh.count()) == (2, 1, 0)
        breaker.reset()
        assert await status(c, b.url("/ok")) == 200
        assert breaker.state("http://never.seen") is CLOSED
    assert names(events) == [
        "breaker.isolated",
        "breaker.closed",
        "breaker.isolated",
        "breaker.isolated",
        "breaker.closed",
        "breaker.closed",
        "breaker.closed",  # fresh's circuit, created isolated
    ]
    changes = [e for e in events if e.name != "breaker.rejected"]
    assert changes[1].detail["reason"] == "reset"
    assert changes[0].method is None


def test_state_of_unknown_keys_is_closed() -> None:
    breaker = rh.CircuitBreaker()
    assert breaker.state("https://example.com/") is CLOSED
    with pytest.raises(ValueError, match="host:port"):  # neither a URL nor a host
        breaker.state("not a url")
    assert breaker.state(["unhashable"]) is CLOSED
    assert breaker.states() == {}
    breaker.reset("https://example.com")  # nothing to reset: no error


async def test_events_are_logged_at_info_and_redacted(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    events: list[Event] = []
    breaker = rh.CircuitBreaker(min_throughput=1, clock=clock, on_event=events.append)
    caplog.set_level(logging.INFO, logger="resilient_http")
    async with MockServer() as server, client("alone", breaker, clock) as c:
        await status(c, server.url("/status/503?api_key=s3cret"))
        with pytest.raises(rh.CircuitOpen):
            await status(c, server.url("/ok?token=s3cret"))
        with pytest.raises(rh.CircuitOpen):
            await status(c, server.url("/ok").with_user("alice").with_password("s3cret"))
        assert all("s3cret" not in repr(k) for k in breaker._circuits)  # no keys hold secrets
        assert all("s3cret" not in netloc for d in breaker._origins.values() for netloc in d)
        assert list(breaker.states()) == [str(server.origin).rstrip("/")]
    assert [e.name for e in events] == ["breaker.opened", "breaker.rejected", "breaker.rejected"]
    assert all("s3cret" not in (e.url or "") for e in events)
    assert "REDACTED" in (events[0].url or "")
    assert events[0].method == "GET"
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.getMessage().split()[0] for r in infos] == ["breaker.opened"]  # rejections: DEBUG
    assert "s3cret" not in caplog.text


# -- standard() ------------------------------------------------------------------------------------


async def test_standard_includes_the_breaker_between_the_timeouts() -> None:
    layers = rh.standard()[0].layers
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Timeout", "Retry", "CircuitBreaker", "Timeout"]
    assert not any(
        isinstance(layer, rh.CircuitBreaker) for layer in rh.standard(breaker=False)[0].layers
    )
    mine = rh.CircuitBreaker(min_throughput=5)
    assert mine in rh.standard(breaker=mine)[0].layers
    with pytest.raises(TypeError, match="breaker"):
        rh.standard(breaker="on")  # type: ignore[arg-type]


async def test_standard_breaker_opens_on_an_outage() -> None:
    clock = FakeClock()
    async with (
        MockServer() as server,
        aiohttp.ClientSession(middlewares=rh.standard(clock=clock, retry=False)) as c,
    ):
        for _ in range(20):
            assert await status(c, server.url("/status/503")) == 503
        with pytest.raises(rh.CircuitOpen):
            await status(c, server.url("/ok"))
        assert server.count() == 20


async def test_idle_circuits_are_pruned_but_unhealthy_ones_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resilient_http.breaker as breaker_module

    monkeypatch.setattr(breaker_module, "_PRUNE_AT", 8)
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=3, clock=clock, key=lambda n: n)

    @rh.resilient(breaker)
    async def call(n: int) -> int:
        if n == 0:
            raise ConnectionResetError()
        return n

    with pytest.raises(ConnectionResetError):
        await call(0)  # one failure in key 0's window: not idle
    for n in range(1, 100):
        assert await call(n) == n
    assert len(breaker.states()) <= 9
    assert 0 in breaker._circuits  # kept: its window holds a failure
    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            await call(0)
    assert breaker.state(0) is OPEN  # the failures before the pruning still counted


async def test_origin_keys_without_yarl_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    import resilient_http.breaker as breaker_module

    monkeypatch.setattr(breaker_module, "_YARL_SLOTS", False)  # the url.origin() fallback
    clock = FakeClock()
    breaker = rh.CircuitBreaker(min_throughput=2, clock=clock)
    async with MockServer() as a, MockServer() as b, client("alone", breaker, clock) as c:
        for _ in range(2):
            await status(c, a.url("/status/503"))
        with pytest.raises(rh.CircuitOpen):
            await status(c, a.url("/ok"))
        assert await status(c, b.url("/ok")) == 200
        assert breaker.state(str(a.url("/"))) is OPEN
        assert all(isinstance(k, URL) for k in breaker._circuits)
        assert not breaker._origins
