"""The circuit of ``CircuitBreaker(store=...)``: a :class:`Circuit` whose state lives on the
server (``breaker.lua``); see :mod:`resilient_http.redis.breaker` for how it is kept in step.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import TYPE_CHECKING, Any

from resilient_http._circuit import CLOSED, HALF_OPEN, ISOLATED, OPEN, Circuit, CircuitState, Ticket
from resilient_http.errors import StoreUnavailable

if TYPE_CHECKING:
    from resilient_http.redis.breaker import SharedCircuitBreaker

__all__ = ["SharedCircuit", "ProbeTicket", "REFRESH", "STALE_AFTER", "new_token"]

REFRESH = 0.25
"""Seconds between two syncs of a circuit while its calls end (a failure syncs at once)."""
STALE_AFTER = 0.5
"""Seconds after which a cached circuit is re-read before admitting a call."""
PROBE_TTL_MS = 30_000
"""A probe slot frees itself after this long (ms) if its process never reports the probe."""
HOLD_MS = 86_400_000
"""How long (ms) an isolation outlives the last process that saw it."""

_STATES = {"c": CLOSED, "o": OPEN, "i": ISOLATED}


def new_token() -> str:
    """A probe slot's token, unique in the fleet (pods all run as pid 1; forks share state)."""
    return uuid.uuid4().hex


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ProbeTicket(Ticket):
    """A probe's admission: its slot's token and the period it probes."""

    __slots__ = ("token", "gen")

    def __init__(self, circuit: Circuit, token: str, gen: str) -> None:
        super().__init__(circuit, True)
        self.token = token
        self.gen = gen


class SharedCircuit(Circuit):
    """A :class:`Circuit` whose state lives on the server (see the module docstring)."""

    __slots__ = (
        "owner", "name", "gen", "fleet_failed", "fleet_total", "fail", "due", "synced",
        "task", "again", "mode", "stale", "known", "timer",
    )

    def __init__(self, owner: SharedCircuitBreaker, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner
        self.name = name
        self.gen = "0"
        self.fleet_failed = self.fleet_total = self.fail = 0
        self.due = self.synced = -math.inf
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.again = False
        self.mode = "fleet"  # or the store's on_error while it is unavailable
        self.known = CLOSED
        self.stale = False
        self.mark_stale()

    # -- the server --------------------------------------------------------------------------

    async def send(self, op: str, gen: str | None = None, token: str = "", ok: int = 0,
                   fail: int = 0) -> list[Any]:
        o = self.owner
        store = o.store
        name = self.name
        keys = [store.key("breaker", name, "state"), store.key("breaker", name, "window")]
        keys += [store.key("breaker", name, "probe", str(n)) for n in range(1, self.probes + 1)]
        width_us = int(o.window * 1e6)
        args = (op, self.gen if gen is None else gen, ok, fail, repr(self.failure_ratio),
                self.min_throughput, width_us, 10, int(self.break_for * 1e6), token,
                PROBE_TTL_MS, HOLD_MS)
        return list(await store.run("breaker", keys, args))

    def apply(self, reply: list[Any], now: float) -> None:
        """Take the server's view (and emit the events of the change)."""
        before = self.known if self.stale else self.state
        st = _STATES[_text(reply[0])]
        remaining, gen = int(reply[1]), _text(reply[2])
        self.fleet_failed, self.fleet_total = int(reply[3]), int(reply[4])
        self.stale = False
        self.synced = now
        changed, self.gen = gen != self.gen, gen
        if self.owner._isolated:
            st = ISOLATED
        if st is CLOSED:
            if before is not CLOSED or changed:
                self._new_ticket(False)
            self.state = CLOSED
            self.ticket.end = self.due = now + REFRESH
            self._arm()
        elif st is OPEN:
            if not (before is HALF_OPEN and remaining <= 0 and not changed):
                if before is not OPEN or changed:
                    self._new_ticket(False)
                self.state = OPEN
                self.until = now + max(0, remaining) / 1e6
        elif before is not ISOLATED:
            self._new_ticket(False)
            self.state = ISOLATED
        self.owner._moved(self, before)

    def kick(self, now: float) -> None:
        """Sync in the background (now, or right after the sync in flight)."""
        self.due = now + REFRESH
        if self.state is CLOSED:
            self.ticket.end = self.due
        self.owner._watch(now)
        if self.task is not None:
            self.again = True
        else:
            self.task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        try:
            while True:
                self.again = False
                ok, fail, self.ok, self.fail = self.ok, self.fail, 0, 0
                try:
                    reply = await self.send("sync", ok=ok, fail=fail)
                except StoreUnavailable:
                    self.degrade()
                    return
                self.apply(reply, self.owner._clock_now())
                if not self.again:
                    return
        finally:
            self.task = None

    async def end_probe(self, ticket: ProbeTicket, op: str) -> None:
        try:
            reply = await self.send(op, ticket.gen, ticket.token)
        except StoreUnavailable:
            self.degrade()
            return
        self.apply(reply, self.owner._clock_now())

    def _arm(self) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(STALE_AFTER, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if self.state is CLOSED and self.mode == "fleet":
            left = self.synced + STALE_AFTER - self.owner._clock_now()
            if left > 0.01:
                self.timer = asyncio.get_running_loop().call_later(left, self._expire)
            else:
                self.mark_stale()

    def mark_stale(self) -> None:
        """Re-read the state from the server before the next call is admitted."""
        if not self.stale:
            self.known, self.stale = self.state, True
        self.state, self.until = OPEN, -math.inf

    # -- outcomes (CircuitBreaker calls these off its fast path) ----------------------------

    def success(self, ticket: Ticket, now: float) -> None:
        if self.mode != "fleet":
            self._degraded(ticket, now, False)
        elif now < ticket.end:
            self.ok += 1
        elif isinstance(ticket, ProbeTicket):
            self._probe_done()
            self.owner._spawn(self.end_probe(ticket, "probe_ok"))
        elif ticket is self.ticket:
            self.ok += 1
            self.kick(now)

    def failure(self, ticket: Ticket, now: float) -> None:
        if self.mode != "fleet":
            self._degraded(ticket, now, True)
        elif isinstance(ticket, ProbeTicket):
            self._probe_done()
            self.owner._spawn(self.end_probe(ticket, "probe_fail"))
        elif ticket is self.ticket:
            self.fail += 1
            total = self.fleet_total + self.ok + self.fail
            failed = self.fleet_failed + self.fail
            if self.state is CLOSED and total >= self.min_throughput and (
                failed >= self.failure_ratio * total
            ):
                self.last_failures, self.last_throughput = failed, total
                self.state, self.until = OPEN, now + self.break_for
                self._new_ticket(False)
            self.kick(now)

    def abort(self, ticket: Ticket) -> None:
        if isinstance(ticket, ProbeTicket):
            self._probe_done()
            if self.mode == "fleet":
                self.owner._spawn(self.end_probe(ticket, "probe_abort"))

    def counts(self, now: float) -> tuple[int, int]:
        if self.mode == "local":
            return super().counts(now)
        return self.fleet_failed + self.fail, self.fleet_total + self.ok + self.fail

    def state_at(self, now: float) -> CircuitState:
        return self.known if self.stale else super().state_at(now)

    def isolate(self) -> None:
        self.stale = False
        super().isolate()

    def reset(self, now: float) -> None:
        self.stale = False
        super().reset(now)
        if self.mode != "local":
            self.ticket.end = self.due

    # -- the store unavailable ---------------------------------------------------------------

    def degrade(self) -> None:
        """Apply the store's ``on_error`` to this circuit."""
        now = self.owner._clock_now()
        self.mode = mode = self.owner.store.on_error
        self.due = now + REFRESH
        self.ok = self.fail = 0
        if self.stale:
            self.stale, self.state = False, self.known
        if mode == "closed":
            self.state, self.until = OPEN, math.inf
        elif mode == "open" or self.state is CLOSED:
            self.state = CLOSED
            self._new_ticket(False)
            self._clear()
            self._start(now)
            self.ticket.end = min(self.ticket.end, self.due)
        elif self.state is HALF_OPEN:
            self.state, self.until = OPEN, now

    def recover(self) -> None:
        """Back to the fleet's state: re-read it before the next call."""
        self.mode = "fleet"
        self.ok = self.fail = 0
        self.mark_stale()

    def _degraded(self, ticket: Ticket, now: float, failed: bool) -> None:
        if now >= self.due:
            self.due = now + REFRESH
            if self.owner.store.healthy:
                self.recover()
                return
        if self.mode == "local":
            (Circuit.failure if failed else Circuit.success)(self, ticket, now)
        self.ok = 0 if self.mode != "local" else self.ok
        if self.state is CLOSED and ticket is self.ticket:
            self.ticket.end = min(self.ticket.end, self.due)
