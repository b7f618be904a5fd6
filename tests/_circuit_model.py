"""A plain reference model of one circuit, for the property tests of ``Circuit`` and of
``CircuitBreaker``: every outcome kept with its time, the window computed from scratch."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from resilient_http import CircuitState
from resilient_http._circuit import Circuit

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

WIDTH = 2.0  # dyadic bucket widths keep float bucket arithmetic exact


@dataclass(eq=False)  # live tickets are told apart by identity
class ModelTicket:
    period: int
    probe: bool


@dataclass
class Model:
    ratio: float
    min_throughput: int
    n: int
    break_for: float
    probes: int
    width: float = WIDTH
    state: CircuitState = CLOSED
    until: float = 0.0
    period: int = 0
    outcomes: list[tuple[float, bool]] = field(default_factory=list)
    live: list[ModelTicket] = field(default_factory=list)

    def counts(self, now: float) -> tuple[int, int]:
        idx = int(now // self.width)
        live = [f for t, f in self.outcomes if int(t // self.width) > idx - self.n]
        return sum(live), len(live)

    def new_period(self, state: CircuitState) -> None:
        self.state = state
        self.period += 1
        self.outcomes = []

    def live_probes(self) -> int:
        return sum(1 for t in self.live if t.probe)

    def admit(self, now: float) -> ModelTicket | None:
        """The ticket a call arriving at ``now`` gets (kept in ``live``), or ``None``."""
        if self.state is OPEN and now >= self.until:
            self.new_period(HALF_OPEN)
        if self.state is CLOSED:
            ticket = ModelTicket(self.period, False)
        elif self.state is HALF_OPEN and self.live_probes() < self.probes:
            ticket = ModelTicket(self.period, True)
        else:
            return None
        self.live.append(ticket)
        return ticket

    def complete(self, ticket: ModelTicket, outcome: str, now: float) -> None:
        """A call ends: ``"success"``, ``"failure"`` or ``"abort"`` (counts as nothing)."""
        self.live.remove(ticket)
        current = ticket.period == self.period
        if outcome == "abort" or not current:
            return
        if ticket.probe:
            if outcome == "success":
                self.new_period(CLOSED)
            else:
                self.new_period(OPEN)
                self.until = now + self.break_for
            return
        self.outcomes.append((now, outcome == "failure"))
        if outcome == "failure":
            failed, total = self.counts(now)
            if total >= self.min_throughput and failed >= self.ratio * total:
                self.new_period(OPEN)
                self.until = now + self.break_for

    def state_at(self, now: float) -> CircuitState:
        """The state a call arriving at ``now`` would see."""
        return HALF_OPEN if self.state is OPEN and now >= self.until else self.state

    def check_window(self, circuit: Circuit, now: float) -> None:
        """Assert that ``circuit``'s window (closed) holds what the model's does: the counts
        now and at every bucket end to come until the last outcome has left. Asked of a
        copy, so the circuit itself does not move: counting moves the successes counted the
        short way into the window, which would keep them from piling up between steps."""
        window = copy.deepcopy(circuit)
        for k in range(self.n + 1):
            t = now if k == 0 else (int(now // self.width) + k) * self.width
            assert window.counts(t) == self.counts(t), t
