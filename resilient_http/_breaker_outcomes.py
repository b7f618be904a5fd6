"""``CircuitBreaker``'s outcomes off the fast path: settling a call that failed (or ended a
bucket, or was a probe), admitting calls to a circuit that is not closed, and the events of
every state change. A base class of :class:`~resilient_http.CircuitBreaker`, which holds the
configuration, the hooks and the map from calls to circuits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from aiohttp import ClientResponse
from yarl import URL

from resilient_http._breaker_keys import canonical_origin, circuit_label
from resilient_http._circuit import CLOSED, HALF_OPEN, OPEN, Circuit, CircuitState, Ticket
from resilient_http._failure import NOT_SENT, is_transient_failure
from resilient_http._middleware import Call, Layer, Step
from resilient_http.errors import CircuitOpen
from resilient_http.events import Emitter

__all__ = ["BreakerOutcomes"]


class BreakerOutcomes(Layer):
    """What a ``CircuitBreaker`` does with an outcome or an admission off its fast path."""

    __slots__ = ()

    # Set by CircuitBreaker.__init__ (its slots).
    break_for: float
    is_failure: Callable[[Any, BaseException | None], bool] | None
    _clock_now: Callable[[], float]
    _events: Emitter
    _circuits: dict[Hashable, Circuit]

    def _create(self, key: Hashable, url: URL | None = None) -> Circuit:
        raise NotImplementedError  # pragma: no cover (CircuitBreaker's)

    def _settle(
        self, call: Call, ticket: Ticket, result: Any, error: BaseException | None
    ) -> Step:
        circuit = ticket.circuit
        if error is not None and (
            not isinstance(error, Exception) or isinstance(error, NOT_SENT)
        ):
            # Cancelled, or refused by an inner layer before anything was sent: neither
            # success nor failure. A probe gives its slot back.
            circuit.abort(ticket)
            return None
        custom = self.is_failure
        if custom is None:
            failed = is_transient_failure(result, error)
        else:
            try:
                failed = bool(custom(result, error))
            except BaseException:
                circuit.abort(ticket)
                if isinstance(result, ClientResponse):
                    result.release()  # the engine drops the result along with this error
                raise
        self._record(call, ticket, failed, self._clock_now(), result, error)
        return None

    def _record(
        self,
        call: Call,
        ticket: Ticket,
        failed: bool,
        now: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        circuit = ticket.circuit
        before = circuit.state
        if failed:
            circuit.failure(ticket, now)
        else:
            circuit.success(ticket, now)
        if circuit.state is not before:
            self._changed(call, circuit, before, result, error)

    def _admit(self, call: Call, i: int, circuit: Circuit) -> Step:
        now = self._clock_now()
        before = circuit.state
        ticket = circuit.admit(now)
        if circuit.state is not before:
            self._changed(call, circuit, before, None, None)
        if ticket is not None:
            call[i] = ticket
            return None
        retry_in = circuit.retry_in(now)
        label = circuit_label(circuit.key)
        self._events.emit_call(
            "breaker.rejected",
            call,
            logging.DEBUG,
            key=label,
            state=circuit.state.value,
            retry_in=retry_in,
        )
        if retry_in is None:
            message = f"circuit for {label} is isolated; call reset() to close it"
        elif circuit.state is HALF_OPEN:
            message = f"circuit for {label} is half-open and every probe slot is taken"
        else:
            message = f"circuit for {label} is open; retry in {retry_in:.3g} s"
        raise CircuitOpen(message, retry_in=retry_in)

    def _changed(
        self,
        call: Call | None,
        circuit: Circuit,
        before: CircuitState,
        result: Any,
        error: BaseException | None,
    ) -> None:
        state = circuit.state
        label = circuit_label(circuit.key)
        if state is OPEN:
            if error is not None:
                cause = type(error).__name__
            elif isinstance(result, ClientResponse):
                cause = str(result.status)
            else:
                cause = "failure"
            if before is HALF_OPEN:
                detail: dict[str, Any] = {"reason": "probe failed"}
            else:
                detail = {
                    "reason": "failure ratio",
                    "failures": circuit.last_failures,
                    "throughput": circuit.last_throughput,
                }
            self._events.emit_call(
                "breaker.opened", call, logging.INFO,
                key=label, cause=cause, break_for=self.break_for, **detail,
            )
        elif state is HALF_OPEN:
            self._events.emit_call(
                "breaker.half_opened", call, logging.INFO, key=label, probes=circuit.probes
            )
        elif state is CLOSED:
            reason = "reset" if call is None else "probe succeeded"
            self._events.emit_call("breaker.closed", call, logging.INFO, key=label, reason=reason)
        else:
            self._events.emit_call("breaker.isolated", call, logging.INFO, key=label)

    def _now(self) -> float:
        try:
            return self._clock_now()
        except RuntimeError:  # the loop clock, read outside a running loop
            return 0.0

    def _find(self, key: Any) -> list[Circuit]:
        if key is None:
            return list({id(c): c for c in self._circuits.values()}.values())
        try:
            circuit = self._circuits.get(key)
        except TypeError:  # unhashable
            circuit = None
        if circuit is None:
            canonical = canonical_origin(key)
            if canonical is not None:
                circuit = self._circuits.get(canonical)
            elif callable(wrapped := getattr(key, "__wrapped__", None)):
                circuit = self._circuits.get(wrapped)  # a function decorated by resilient()
        return [] if circuit is None else [circuit]
