"""The circuit breaker's pure state machine: no I/O, time passed in."""

from __future__ import annotations

import math

import pytest
from _circuit_model import WIDTH, Model, ModelTicket
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from resilient_http._circuit import Circuit, CircuitState, Ticket

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
ISOLATED = CircuitState.ISOLATED


def make(**kw: object) -> Circuit:
    args: dict[str, object] = dict(
        failure_ratio=0.5, min_throughput=4, window=10.0, break_for=5.0, probes=1, buckets=10
    )
    args.update(kw)
    return Circuit(**args)  # type: ignore[arg-type]


def record(c: Circuit, failed: bool, now: float) -> None:
    t = c.admit(now)
    assert t is not None
    (c.failure if failed else c.success)(t, now)


# -- closed: the window and the ratio -----------------------------------------------------


def test_does_not_open_below_min_throughput() -> None:
    c = make(min_throughput=4)
    for _ in range(3):
        record(c, True, 1.0)
    assert c.state is CLOSED
    assert c.counts(1.0) == (3, 3)
    record(c, True, 1.0)
    assert c.state is OPEN
    assert (c.last_failures, c.last_throughput) == (4, 4)


def test_opens_exactly_at_the_ratio() -> None:
    c = make(min_throughput=4, failure_ratio=0.5)
    record(c, False, 0.0)
    record(c, False, 0.0)
    record(c, True, 0.0)
    assert c.state is CLOSED  # 1 / 3, below throughput anyway
    record(c, True, 0.0)
    assert c.state is OPEN  # 2 / 4 = 0.5


def test_below_the_ratio_stays_closed() -> None:
    c = make(min_throughput=4, failure_ratio=0.5)
    for failed in (False, False, False, True, True):
        record(c, failed, 0.0)
    assert c.state is CLOSED  # 2 / 5 < 0.5
    assert c.counts(0.0) == (2, 5)


def test_a_success_never_opens() -> None:
    c = make(min_throughput=2, failure_ratio=0.5)
    record(c, True, 0.0)
    for _ in range(5):
        record(c, False, 0.0)
    assert c.state is CLOSED


def test_window_forgets_old_outcomes_bucket_by_bucket() -> None:
    c = make(window=10.0, buckets=10, min_throughput=4)
    for _ in range(3):
        record(c, True, 0.5)  # bucket 0
    assert c.counts(9.99) == (3, 3)
    assert c.counts(10.0) == (0, 0)  # bucket 0 left the window
    record(c, True, 10.0)
    assert c.state is CLOSED  # the three old failures no longer count


def test_window_skips_many_buckets_at_once() -> None:
    c = make(window=10.0, buckets=10)
    record(c, True, 0.0)
    record(c, False, 5.0)
    assert c.counts(14.9) == (0, 1)
    assert c.counts(1000.0) == (0, 0)
    record(c, False, 1000.0)
    assert c.counts(1000.0) == (0, 1)


def test_successes_take_the_short_way_within_a_bucket_and_expire_with_it() -> None:
    c = make(window=10.0, buckets=10, min_throughput=3, failure_ratio=0.75)
    t = c.admit(0.5)
    assert t is not None and t.end == 1.0  # bucket 0 ends at 1.0
    for _ in range(3):
        c.success(t, 0.5)
    assert c.ok == 3  # counted the short way...
    assert c.counts(0.5) == (0, 3) and c.ok == 0  # ...and added to the window when asked
    c.success(t, 0.75)
    c.success(t, 1.0)  # a new bucket: the long way, which moves the short way on
    assert t.end == 2.0
    c.success(t, 1.5)
    assert "total=6" in repr(c)  # repr counts what the short way holds
    assert c.counts(10.0) == (0, 2)  # bucket 0's four left the window, bucket 1's two did not
    c.failure(t, 10.0)
    assert c.state is CLOSED  # 1 of 3
    c.failure(t, 11.0)
    assert c.state is CLOSED  # bucket 1 left too: 2 of 2, under min_throughput
    c.failure(t, 11.0)
    assert c.state is OPEN  # 3 of 3


def test_only_the_current_closed_tickets_take_the_short_way() -> None:
    c = make(min_throughput=1, probes=2)
    early = c.admit(0.0)
    assert early is not None and early.end > 0.0
    record(c, True, 0.0)
    assert c.state is OPEN
    assert early.end == c.ticket.end == -math.inf  # stale; the open period's admits nothing
    c.success(early, 0.0)
    assert c.counts(0.0) == (0, 0)
    probe = c.admit(5.0)
    assert probe is not None and probe.end == -math.inf
    c.success(probe, 5.0)
    assert c.state is CLOSED and c.ticket.end == 6.0
    c.isolate()
    assert c.ticket.end == -math.inf


def test_failure_ratio_one_needs_every_call_to_fail() -> None:
    c = make(failure_ratio=1.0, min_throughput=3)
    record(c, False, 0.0)
    for _ in range(10):
        record(c, True, 0.0)
    assert c.state is CLOSED
    c.reset(0.0)
    for _ in range(3):
        record(c, True, 0.0)
    assert c.state is OPEN


# -- open and half-open ---------------------------------------------------------------------


def opened(**kw: object) -> Circuit:
    c = make(min_throughput=1, **kw)
    record(c, True, 0.0)
    assert c.state is OPEN
    return c


def test_open_rejects_until_the_break_is_over() -> None:
    c = opened(break_for=5.0)
    assert c.admit(1.0) is None
    assert c.retry_in(1.0) == 4.0
    assert c.state_at(4.999) is OPEN
    assert c.state_at(5.0) is HALF_OPEN
    assert c.state is OPEN  # state_at changes nothing
    probe = c.admit(5.0)
    assert probe is not None and probe.probe
    assert c.state is HALF_OPEN


def test_half_open_admits_only_the_probe_count() -> None:
    c = opened(probes=2)
    a, b = c.admit(5.0), c.admit(5.0)
    assert a is not None and b is not None
    assert c.admit(5.0) is None
    assert c.retry_in(5.0) == c.break_for


def test_probe_success_closes_and_clears_the_window() -> None:
    c = opened()
    probe = c.admit(5.0)
    assert probe is not None
    c.success(probe, 6.0)
    assert c.state is CLOSED
    assert c.counts(6.0) == (0, 0)
    assert c.in_flight == 0


def test_probe_failure_reopens_for_break_for() -> None:
    c = opened(break_for=5.0)
    probe = c.admit(5.0)
    assert probe is not None
    c.failure(probe, 7.0)
    assert c.state is OPEN
    assert c.retry_in(7.0) == 5.0
    assert c.admit(11.9) is None
    assert c.admit(12.0) is not None


def test_aborted_probe_frees_its_slot_and_decides_nothing() -> None:
    c = opened(probes=1)
    probe = c.admit(5.0)
    assert probe is not None
    assert c.admit(5.0) is None
    c.abort(probe)
    assert c.state is HALF_OPEN
    again = c.admit(5.0)
    assert again is not None


def test_outcomes_from_an_earlier_period_change_nothing() -> None:
    c = make(min_throughput=2)
    early = c.admit(0.0)
    assert early is not None
    record(c, True, 0.0)
    record(c, True, 0.0)
    assert c.state is OPEN
    c.success(early, 1.0)  # started before the circuit opened: cannot close it
    assert c.state is OPEN
    probe = c.admit(5.0)
    assert probe is not None
    c.failure(early, 5.0)  # cannot re-open it either, nor take the probe's decision
    assert c.state is HALF_OPEN
    c.success(probe, 5.0)
    assert c.state is CLOSED
    c.failure(early, 5.0)  # nor count in the new closed period's window
    assert c.counts(5.0) == (0, 0)


def test_a_stale_probe_keeps_its_slot_until_it_ends() -> None:
    c = opened(probes=2, break_for=5.0)
    p1, p2 = c.admit(5.0), c.admit(5.0)
    assert p1 is not None and p2 is not None
    c.failure(p1, 5.0)  # re-opens; p2 still running
    assert c.state is OPEN
    p3 = c.admit(10.0)
    assert p3 is not None
    assert c.admit(10.0) is None  # p2 + p3 = 2 probes in flight
    c.success(p2, 10.0)  # stale: frees its slot, does not close
    assert c.state is HALF_OPEN
    assert c.admit(10.0) is not None


def test_isolate_and_reset() -> None:
    c = make()
    c.isolate()
    assert c.state is ISOLATED
    assert c.admit(100.0) is None
    assert c.retry_in(100.0) is None
    c.reset(100.0)
    assert c.state is CLOSED
    assert c.admit(100.0) is not None
    assert c.retry_in(100.0) == 0.0


def test_repr_shows_state() -> None:
    assert "closed" in repr(make())
    t = make().ticket
    assert isinstance(t, Ticket) and "closed" in repr(t)


# -- property: the machine against a plain model ------------------------------------------


class CircuitMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.live: list[tuple[Ticket, ModelTicket]] = []

    @initialize(
        ratio=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        min_throughput=st.integers(1, 5),
        n=st.sampled_from([1, 2, 4]),
        break_for=st.sampled_from([1.0, 2.5, 8.0]),
        probes=st.integers(1, 3),
    )
    def setup(
        self, ratio: float, min_throughput: int, n: int, break_for: float, probes: int
    ) -> None:
        self.c = Circuit(
            failure_ratio=ratio,
            min_throughput=min_throughput,
            window=WIDTH * n,
            break_for=break_for,
            probes=probes,
            buckets=n,
        )
        self.m = Model(ratio, min_throughput, n, break_for, probes)

    @rule(dt=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 8.0, 20.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def to_the_next_bucket(self) -> None:
        self.now = (self.now // WIDTH + 1) * WIDTH  # exactly onto a bucket's end

    @rule()
    def admit(self) -> None:
        expected = self.m.admit(self.now)
        got = self.c.admit(self.now)
        assert (got is None) == (expected is None)
        if got is not None and expected is not None:
            assert got.probe == expected.probe
            self.live.append((got, expected))

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "success", "failure", "abort"]))
    def complete(self, data: st.DataObject, outcome: str) -> None:
        k = data.draw(st.integers(0, len(self.live) - 1))
        ticket, mt = self.live.pop(k)
        if outcome == "abort":
            self.c.abort(ticket)
        elif outcome == "success":
            self.c.success(ticket, self.now)
        else:
            self.c.failure(ticket, self.now)
        self.m.complete(mt, outcome, self.now)

    @rule()
    def isolate(self) -> None:
        self.c.isolate()
        self.m.new_period(ISOLATED)

    @rule()
    def reset(self) -> None:
        self.c.reset(self.now)
        self.m.new_period(CLOSED)

    @invariant()
    def window_counts_match(self) -> None:
        if hasattr(self, "c") and self.m.state is CLOSED:
            self.m.check_window(self.c, self.now)

    @rule()
    def ask_counts(self) -> None:
        # Asking rolls the window, in any state (only a closed circuit's window means anything)
        self.c.counts(self.now)
        if self.c.state is CLOSED:
            assert self.now < self.c.ticket.end  # the window is current: the short way is open

    @invariant()
    def same_state(self) -> None:
        if hasattr(self, "c"):
            assert self.c.state is self.m.state
            if self.m.state is OPEN:
                assert self.c.until == self.m.until

    @invariant()
    def never_more_probes_than_allowed(self) -> None:
        if hasattr(self, "c"):
            assert self.c.in_flight == self.m.live_probes()
            assert self.m.live_probes() <= self.m.probes

    @invariant()
    def only_the_current_closed_ticket_takes_the_short_way(self) -> None:
        if hasattr(self, "c"):
            current = self.c.ticket
            assert (current.end > -math.inf) == (self.c.state is CLOSED)
            for ticket, mt in self.live:
                short = mt.period == self.m.period and self.m.state is CLOSED
                assert (ticket is current) == (mt.period == self.m.period)
                assert (ticket.end > -math.inf) == short


CircuitMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60)
test_circuit_machine = CircuitMachine.TestCase


@pytest.mark.parametrize("probes", [1, 3])
def test_concurrent_probes_bounded_under_churn(probes: int) -> None:
    # Many rounds of open -> half-open -> probe failure, with probes left running.
    c = make(min_throughput=1, probes=probes, break_for=1.0)
    record(c, True, 0.0)
    now = 0.0
    running: list[Ticket] = []
    for _ in range(50):
        now += 1.0
        while (t := c.admit(now)) is not None:
            running.append(t)
            assert len(running) <= probes
        if running:
            c.failure(running.pop(0), now)
    assert c.in_flight == len(running)
