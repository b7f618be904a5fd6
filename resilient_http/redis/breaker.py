"""``CircuitBreaker(store=RedisStore(...))``: one circuit per key for the whole fleet.

The server (``breaker.lua``) holds each circuit's state (closed, open until a time, isolated),
its window of outcomes and its probe slots (``SET NX PX``: one probe in the fleet at a time
with ``half_open_probes=1``). Each process caches the state and keeps the closed path
synchronous, as without a store:

* a success only adds one to a local counter; the counts go to the server with the next
  *sync*, at most every :data:`REFRESH` seconds while calls end, and at once after a failure
  (one sync in flight per circuit; failures ending meanwhile ride with the next). The sync
  adds them to the fleet's window, opens the circuit when the fleet's ratio is reached, and
  returns the state, so a process learns of a change within ``REFRESH`` plus a round trip
  while it has traffic. A failure that brings the last known fleet counts plus the local
  ones past the ratio opens the local view at once, before the server confirms.
* a circuit not synced for :data:`STALE_AFTER` seconds (an idle process, a new circuit) is
  re-read before the next call is admitted (one round trip).
* while open, calls fail fast locally; once the break is over, a call asks the server for a
  probe slot and is the probe only if it got one. A probe's outcome is sent at once.

Outcomes are counted per period (the server's ``gen``): counts sent for a period that ended
are dropped, as a ticket of an earlier period changes nothing in memory. When the store is
unavailable, each circuit applies ``on_error``: ``"local"`` continues as an in-process circuit
(from its last known state), ``"open"`` lets every call through uncounted, ``"closed"`` raises
``StoreUnavailable``; it returns to the fleet's state once the store has recovered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
from collections.abc import Coroutine
from typing import Any

from resilient_http._circuit import CLOSED, HALF_OPEN, ISOLATED, OPEN, Circuit, CircuitState, Ticket
from resilient_http._middleware import Call, Step
from resilient_http.breaker import CircuitBreaker, _label
from resilient_http.errors import StoreUnavailable
from resilient_http.redis.store import RedisStore

__all__ = ["SharedCircuitBreaker", "REFRESH", "STALE_AFTER"]

REFRESH = 0.25
"""Seconds between two syncs of a circuit while its calls end (a failure syncs at once)."""
STALE_AFTER = 0.5
"""Seconds after which a cached circuit is re-read before admitting a call."""
PROBE_TTL_MS = 30_000
"""A probe slot frees itself after this long (ms) if its process never reports the probe."""
HOLD_MS = 86_400_000
"""How long (ms) an isolation outlives the last process that saw it."""

_STATES = {"c": CLOSED, "o": OPEN, "i": ISOLATED}
_tokens = itertools.count()
_PID = os.getpid()


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


class SharedCircuitBreaker(CircuitBreaker):
    """A :class:`~resilient_http.CircuitBreaker` sharing its circuits through a
    :class:`~resilient_http.RedisStore` (made by ``CircuitBreaker(store=...)``)."""

    __slots__ = ("store", "_tasks", "_watch_due")

    def __init__(self, *args: Any, store: RedisStore, **kwargs: Any) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore or None, got {type(store).__name__}")
        super().__init__(*args, **kwargs)
        self.store = store
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch_due = -math.inf

    def _new_circuit(self, **kwargs: Any) -> Circuit:
        return SharedCircuit(self, _label(kwargs["key"]), **kwargs)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit(self, call: Call, i: int, circuit: Circuit) -> Step:
        assert isinstance(circuit, SharedCircuit)
        now = self._clock_now()
        if circuit.mode != "fleet":
            if self.store.healthy:
                circuit.recover()
            elif circuit.mode == "closed":
                raise StoreUnavailable(f"the Redis store is degraded (circuit {circuit.name})")
            else:
                return super()._admit(call, i, circuit)
        state = circuit.state
        if (state is OPEN and now >= circuit.until) or (
            state is HALF_OPEN and circuit.in_flight < circuit.probes
        ):
            return self._ask(call, i, circuit)
        if now >= circuit.due:
            circuit.kick(now)
        self._watch(now)
        return super()._admit(call, i, circuit)

    async def _ask(self, call: Call, i: int, circuit: SharedCircuit) -> None:
        """Re-read a stale circuit, or ask for a probe slot once the break is over."""
        token = f"{_PID}:{next(_tokens)}"
        op = "sync" if circuit.stale else "probe"
        try:
            reply = await circuit.send(op, token=token)
        except StoreUnavailable:
            circuit.degrade()
            step = self._admit(call, i, circuit)  # mode is now on_error: never awaits
            assert step is None
            return
        now = self._clock_now()
        circuit.apply(reply, now)
        if int(reply[5]):
            before, circuit.state = circuit.state, HALF_OPEN
            circuit.in_flight += 1
            call[i] = ProbeTicket(circuit, token, circuit.gen)
            self._moved(circuit, before)
            return
        if circuit.state is OPEN and now >= circuit.until:
            if op == "sync":  # it was stale, and is half-open: ask for a slot
                return await self._ask(call, i, circuit)
            circuit.until = now + REFRESH  # another process holds the slot
        super()._admit(call, i, circuit)

    def _moved(self, circuit: SharedCircuit, before: CircuitState) -> None:
        state = circuit.state
        if state is before:
            return
        label = _label(circuit.key)
        if state is OPEN:
            self._events.emit_call(
                "breaker.opened", None, logging.INFO, key=label, cause="fleet", reason="fleet",
                break_for=self.break_for,
            )
        elif state is CLOSED:
            self._events.emit_call("breaker.closed", None, logging.INFO, key=label, reason="fleet")
        else:
            self._changed(None, circuit, before, None, None)

    def _watch(self, now: float) -> None:
        if now >= self._watch_due:
            self._watch_due = now + REFRESH
            self._spawn(self._read_global())

    def _global_key(self) -> str:
        return self.store.key("breaker", "*", "isolated")

    async def _read_global(self) -> None:
        try:
            isolated = bool(await self.store.call(self.store.client.exists, self._global_key()))
        except StoreUnavailable:
            return
        if isolated and not self._isolated:
            CircuitBreaker.isolate(self)
        elif not isolated and self._isolated:
            CircuitBreaker.reset(self)
            for circuit in self._find(None):
                assert isinstance(circuit, SharedCircuit)
                circuit.mark_stale()

    # -- manual control, fleet-wide ------------------------------------------------------------

    def isolate(self, key: Any = None) -> None:
        """As :meth:`CircuitBreaker.isolate`, for the whole fleet: applied here at once, and
        written to the server in the background (``await aisolate(...)`` waits for it).
        Needs a running event loop."""
        asyncio.get_running_loop()
        CircuitBreaker.isolate(self, key)
        self._spawn(self._write("isolate", key))

    def reset(self, key: Any = None) -> None:
        """As :meth:`CircuitBreaker.reset`, for the whole fleet (see :meth:`isolate`)."""
        asyncio.get_running_loop()
        CircuitBreaker.reset(self, key)
        self._spawn(self._write("reset", key))

    async def aisolate(self, key: Any = None) -> None:
        CircuitBreaker.isolate(self, key)
        await self._write("isolate", key)

    async def areset(self, key: Any = None) -> None:
        CircuitBreaker.reset(self, key)
        await self._write("reset", key)

    async def _write(self, op: str, key: Any) -> None:
        store = self.store
        try:
            if key is None:
                if op == "isolate":
                    await store.call(store.client.set, self._global_key(), b"1", None, HOLD_MS)
                else:
                    await store.call(store.client.delete, self._global_key())
            for circuit in self._find(key) if key is not None or op == "reset" else ():
                assert isinstance(circuit, SharedCircuit)
                circuit.apply(await circuit.send(op), self._clock_now())
        except StoreUnavailable:
            if store.on_error == "closed":
                raise
