"""``CircuitBreaker``'s circuits by key: finding or creating the circuit of a custom key, a
decorated function or an origin (every spelling of an origin is an alias of one circuit). A
base class of :class:`~resilient_http.CircuitBreaker`, which looks origins up on its fast
path and prunes idle circuits."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from yarl import URL

from resilient_http._breaker_control import BreakerControl
from resilient_http._breaker_keys import canonical_origin
from resilient_http._circuit import Circuit
from resilient_http._middleware import ARGS, HANDLER, KWARGS, Call

__all__ = ["BreakerCircuits", "BUCKETS"]

BUCKETS = 10
"""Time buckets per window: the window slides in steps of ``window / 10``."""


class BreakerCircuits(BreakerControl):
    """Which circuit a call or a key belongs to, created on first use."""

    __slots__ = ()

    # Set by CircuitBreaker.__init__ (its slots).
    failure_ratio: float
    min_throughput: int
    window: float
    half_open_probes: int
    _prune_at: int

    def _prune(self) -> None:
        raise NotImplementedError  # pragma: no cover (CircuitBreaker's)

    def _keyed_circuit(self, call: Call, request: Any) -> Circuit:
        key_fn = self._key_fn
        if key_fn is None:
            return self._circuit(call[HANDLER])
        if request is not None:
            return self._circuit(key_fn(request))
        return self._circuit(key_fn(*call[ARGS], **(call[KWARGS] or {})))

    def _circuit(self, key: Hashable, url: URL | None = None) -> Circuit:
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._create(key, url)
        return circuit

    def _create(self, key: Hashable, url: URL | None = None) -> Circuit:
        # Every spelling of an origin ("https://h:443", ("https", "h")) is an alias of its
        # canonical URL ("https://h"): all these keys map to one circuit.
        if url is not None:
            canonical = canonical_origin(url)
        elif isinstance(key, URL):
            canonical = canonical_origin(key)
        else:
            canonical = None
        circuit = None if canonical is None else self._circuits.get(canonical)
        if circuit is None:
            if len(self._circuits) >= self._prune_at:
                self._prune()
            circuit = self._new_circuit(
                failure_ratio=self.failure_ratio,
                min_throughput=self.min_throughput,
                window=self.window,
                break_for=self.break_for,
                probes=self.half_open_probes,
                buckets=BUCKETS,
                now=self._now(),
                key=key if canonical is None else canonical,
            )
            if self._isolated or (self._isolated_hosts and self._host_isolated(canonical)):
                circuit.isolate()
            if canonical is not None:
                self._circuits[canonical] = circuit
        self._circuits[key] = circuit
        return circuit

    def _new_circuit(self, **kwargs: Any) -> Circuit:
        return Circuit(**kwargs)
