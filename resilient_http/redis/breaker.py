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
import logging
import math
from collections.abc import Coroutine
from typing import Any

from resilient_http._breaker_keys import circuit_label as _label
from resilient_http._circuit import CLOSED, HALF_OPEN, OPEN, Circuit, CircuitState
from resilient_http._middleware import Call, Step
from resilient_http.breaker import CircuitBreaker
from resilient_http.errors import StoreUnavailable
from resilient_http.redis.circuit import (
    HOLD_MS,
    REFRESH,
    STALE_AFTER,
    ProbeTicket,
    SharedCircuit,
    new_token,
)
from resilient_http.redis.store import RedisStore

__all__ = ["SharedCircuitBreaker", "REFRESH", "STALE_AFTER"]


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
        token = new_token()
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
        """:meth:`isolate`, returning once the fleet's state is written (bounded by the
        store's ``socket_timeout``; ``StoreUnavailable`` only with ``on_error="closed"``)."""
        CircuitBreaker.isolate(self, key)
        await self._write("isolate", key)

    async def areset(self, key: Any = None) -> None:
        """:meth:`reset`, returning once the fleet's state is written (see :meth:`aisolate`)."""
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
