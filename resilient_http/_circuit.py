"""The circuit breaker's state machine, without I/O: every method takes ``now`` (seconds).

One :class:`Circuit` guards one key (a host, a function). States::

    CLOSED ──(failures ≥ ratio·throughput, throughput ≥ min)──▶ OPEN
    OPEN ──(break_for elapsed, next call)──▶ HALF_OPEN  (up to ``probes`` calls at once)
    HALF_OPEN ──(a probe succeeds)──▶ CLOSED     HALF_OPEN ──(a probe fails)──▶ OPEN
    any ──isolate()──▶ ISOLATED ──reset()──▶ CLOSED

Outcomes are counted in a sliding window of ``buckets`` time buckets (``window / buckets``
seconds each): recording one costs O(1) and allocates nothing beyond the counters. The window
forgets a bucket as a whole once it is older than ``window``, so the counts cover between
``window - window/buckets`` and ``window`` seconds of history.

A success is what almost every call ends with, so it is the cheapest thing to record: while
the clock is before ``ticket.end`` (the end of the current bucket, on the current closed
period's ticket only), :meth:`Circuit.success` just adds one to :attr:`Circuit.ok`, the
successes of the current bucket not yet added to the window's totals. One comparison stands
for "current period, not a probe, same bucket as before": every other ticket's ``end`` is
minus infinity. Everything else (a new bucket, a probe, a stale ticket) takes the general path.

A call admitted by :meth:`Circuit.admit` holds a :class:`Ticket` naming the state period it
was admitted in (a closed period or one half-open period). Outcomes of tickets from an
earlier period change nothing, so a call that started before the circuit opened cannot
close it or count in a later window. A probe keeps its slot until it ends, whatever the
period: never more than ``probes`` probe calls are in flight at once, even when a probe of
an earlier half-open period is still running (bound probes with a per-attempt timeout).

Threads: every method but the short way of :meth:`Circuit.success` runs under one lock
(:data:`_LOCK`), so circuits shared by event loops in several threads change state and hand
out probe slots exactly as with one loop. The short way (one ``ok += 1``) takes no lock: it
is what almost every call does, and a fold of ``ok`` racing with it in another thread can at
worst leave one success uncounted.
"""

from __future__ import annotations

import enum
import threading

__all__ = ["CircuitState", "Circuit", "Ticket"]


class CircuitState(enum.Enum):
    """The state of one circuit."""

    CLOSED = "closed"
    """Calls pass; outcomes are counted."""
    OPEN = "open"
    """Calls fail fast with ``CircuitOpen`` until the break is over."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls pass; the first outcome decides."""
    ISOLATED = "isolated"
    """Opened by hand (``isolate()``): calls fail fast until ``reset()``."""


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
ISOLATED = CircuitState.ISOLATED


_LOCK = threading.Lock()
"""Serializes the state changes of every circuit (never taken by the short way of success)."""

_NEVER = float("-inf")
"""The ``end`` of every ticket but the current closed period's: no success counts the short way."""


class Ticket:
    """A call's admission: which circuit, and which state period it was admitted in.

    ``end`` is when the current bucket of the window ends (seconds) on the ticket of the
    current closed period, and minus infinity on every other ticket (a probe, an open or
    isolated period's, one of an earlier period): a success at ``now < ticket.end`` is
    counted by ``ticket.circuit.ok += 1`` (see :meth:`Circuit.success`).
    """

    __slots__ = ("circuit", "probe", "end")

    def __init__(self, circuit: Circuit, probe: bool) -> None:
        self.circuit = circuit
        self.probe = probe
        self.end = _NEVER

    def __repr__(self) -> str:
        kind = "probe" if self.probe else "closed"
        return f"<Ticket {kind} of {self.circuit!r}>"


class Circuit:
    """One circuit's state and its sliding window of outcomes.

    Args:
        failure_ratio: the share of failures (0 < ratio <= 1) in the window that opens the
            circuit.
        min_throughput: the number of outcomes the window must hold before it may open.
        window: the length of the sliding window, in seconds.
        break_for: how long the circuit stays open before probing, in seconds.
        probes: how many probe calls may be in flight at once while half-open.
        buckets: how many time buckets the window is split into.
        now: the current time, in seconds.
        key: what the circuit guards (a label for events; not used by the logic).
    """

    __slots__ = (
        "key",
        "failure_ratio",
        "min_throughput",
        "break_for",
        "probes",
        "state",
        "ticket",
        "until",
        "in_flight",
        "last_failures",
        "last_throughput",
        "ok",
        "_n",
        "_width",
        "_totals",
        "_fails",
        "_total",
        "_failed",
        "_index",
        "_slot",
        "_end",
    )

    def __init__(
        self,
        *,
        failure_ratio: float,
        min_throughput: int,
        window: float,
        break_for: float,
        probes: int,
        buckets: int = 10,
        now: float = 0.0,
        key: object = None,
    ) -> None:
        self.key = key
        self.failure_ratio = failure_ratio
        self.min_throughput = min_throughput
        self.break_for = break_for
        self.probes = probes
        self.state = CLOSED
        self.ticket = Ticket(self, False)
        """The ticket of the current period (closed or half-open)."""
        self.until = 0.0
        """When an open circuit lets the next probe through."""
        self.in_flight = 0
        """Probe calls in flight, of any half-open period."""
        self.last_failures = 0
        """Failures in the window when the circuit last opened (for events)."""
        self.last_throughput = 0
        """Outcomes in the window when the circuit last opened (for events)."""
        self.ok = 0
        """Successes in the current bucket not yet added to the window's totals (the short
        way of :meth:`success`, which ``CircuitBreaker`` inlines)."""
        self._n = buckets
        self._width = window / buckets
        self._totals = [0] * buckets
        self._fails = [0] * buckets
        self._total = 0
        self._failed = 0
        self._index = self._slot = 0
        self._end = 0.0
        self._start(now)

    # -- admission -------------------------------------------------------------------------

    def admit(self, now: float) -> Ticket | None:
        """Admit a call: its ticket, or ``None`` when it must fail fast.

        An open circuit whose break is over turns half-open here; a half-open circuit admits
        up to ``probes`` calls at once.
        """
        if self.state is CLOSED:
            return self.ticket
        with _LOCK:
            state = self.state
            if state is CLOSED:
                return self.ticket
            if state is OPEN:
                if now < self.until:
                    return None
                self.state = HALF_OPEN
                self._new_ticket(True)
            elif state is ISOLATED:
                return None
            if self.in_flight >= self.probes:
                return None
            self.in_flight += 1
            return self.ticket

    def retry_in(self, now: float) -> float | None:
        """Seconds until a rejected call might be admitted: what is left of the break while
        open, ``break_for`` while half-open with every probe slot taken (a failing probe
        re-opens for that long; a succeeding one closes sooner), ``None`` when isolated, 0
        when a call would be admitted now."""
        state = self.state
        if state is OPEN:
            return max(0.0, self.until - now)
        if state is HALF_OPEN:
            return self.break_for if self.in_flight >= self.probes else 0.0
        if state is ISOLATED:
            return None
        return 0.0

    def state_at(self, now: float) -> CircuitState:
        """The state a call arriving at ``now`` would see (an open circuit whose break is
        over reads as half-open), without changing anything."""
        if self.state is OPEN and now >= self.until:
            return HALF_OPEN
        return self.state

    # -- outcomes --------------------------------------------------------------------------

    def success(self, ticket: Ticket, now: float) -> None:
        """Record a call that did not fail. A probe's success closes the circuit.

        ``CircuitBreaker.exit`` inlines the first two lines (a method call costs more than
        they do): keep them the same there.
        """
        if now < ticket.end:  # the current closed period, and the current bucket
            self.ok += 1
            return
        with _LOCK:
            if ticket.probe:
                self._probe_done()
                if ticket is self.ticket:
                    self._close(now)
                return
            if ticket is self.ticket:  # else admitted in an earlier period
                if now >= self._end:
                    self._roll(now)
                self.ok += 1

    def failure(self, ticket: Ticket, now: float) -> None:
        """Record a failed call. It opens the circuit when the window's failure ratio
        reaches ``failure_ratio`` with at least ``min_throughput`` outcomes; a probe's
        failure re-opens it."""
        with _LOCK:
            self._failure(ticket, now)

    def _failure(self, ticket: Ticket, now: float) -> None:
        if ticket.probe:
            self._probe_done()
            if ticket is self.ticket:
                self._open(now)
            return
        if ticket is not self.ticket:
            return
        if now >= self._end:
            self._roll(now)
        else:
            self._fold()
        b = self._slot
        self._totals[b] += 1
        self._fails[b] += 1
        self._total += 1
        self._failed += 1
        total = self._total
        if total >= self.min_throughput and self._failed >= self.failure_ratio * total:
            self.last_failures = self._failed
            self.last_throughput = total
            self._open(now)

    def abort(self, ticket: Ticket) -> None:
        """Forget a call that ended without an outcome (cancelled): a probe frees its slot,
        the state does not change."""
        if ticket.probe:
            with _LOCK:
                self._probe_done()

    def _probe_done(self) -> None:
        if self.in_flight > 0:
            self.in_flight -= 1

    # -- manual control ----------------------------------------------------------------------

    def isolate(self) -> None:
        """Open the circuit until :meth:`reset`. Outcomes of calls in flight no longer count
        (probes in flight keep their slots until they end)."""
        with _LOCK:
            self.state = ISOLATED
            self._new_ticket(False)
            self._clear()

    def reset(self, now: float) -> None:
        """Close the circuit and forget the window. Outcomes of calls in flight no longer
        count (probes in flight keep their slots until they end)."""
        with _LOCK:
            self._close(now)

    # -- the window --------------------------------------------------------------------------

    def counts(self, now: float) -> tuple[int, int]:
        """``(failures, throughput)`` in the window at ``now``."""
        with _LOCK:
            if now >= self._end:
                self._roll(now)
            else:
                self._fold()
            return self._failed, self._total

    def _fold(self) -> None:
        """Add the successes counted the short way (``ok``) to the current bucket."""
        ok = self.ok
        if ok:
            self._totals[self._slot] += ok
            self._total += ok
            self.ok -= ok  # not = 0: keeps an increment made meanwhile by another thread

    def _roll(self, now: float) -> None:
        self._fold()
        index = int(now // self._width)
        steps = index - self._index
        n = self._n
        if steps >= n:
            self._clear()
        else:
            totals = self._totals
            fails = self._fails
            for k in range(self._index + 1, index + 1):
                b = k % n
                self._total -= totals[b]
                self._failed -= fails[b]
                totals[b] = 0
                fails[b] = 0
        self._index = index
        self._slot = index % n
        self._end = (index + 1) * self._width
        if self.state is CLOSED:
            self.ticket.end = self._end

    def _start(self, now: float) -> None:
        index = self._index = int(now // self._width)
        self._slot = index % self._n
        self._end = self.ticket.end = (index + 1) * self._width

    def _clear(self) -> None:
        n = self._n
        self._totals[:] = [0] * n
        self._fails[:] = [0] * n
        self._total = 0
        self._failed = 0
        self.ok = 0

    def _new_ticket(self, probe: bool) -> None:
        """Start a new state period: outcomes of calls admitted before no longer count."""
        self.ticket.end = _NEVER
        self.ticket = Ticket(self, probe)

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.until = now + self.break_for
        self._new_ticket(False)  # nothing admitted while open counts
        self._clear()

    def _close(self, now: float) -> None:
        self.state = CLOSED
        self._new_ticket(False)
        self._clear()
        self._start(now)

    def __repr__(self) -> str:
        return (
            f"<Circuit {self.state.value} failed={self._failed} total={self._total + self.ok} "
            f"in_flight={self.in_flight}>"
        )
