"""``CircuitBreaker``'s manual control: :meth:`state`, :meth:`states`, :meth:`isolate`,
:meth:`reset` and their awaitable forms, with the keys they read (a URL, a bare host or
``host:port``, a decorated function, a custom key). A base class of
:class:`~resilient_http.CircuitBreaker`."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from yarl import URL

from resilient_http._breaker_keys import canonical_origin, circuit_label, host_port, of_host
from resilient_http._breaker_outcomes import BreakerOutcomes
from resilient_http._circuit import CLOSED, HALF_OPEN, ISOLATED, OPEN, Circuit, CircuitState
from resilient_http._validate import show

__all__ = ["BreakerControl"]


class BreakerControl(BreakerOutcomes):
    """Reading and forcing the state of a ``CircuitBreaker``'s circuits by hand."""

    __slots__ = ("_isolated", "_isolated_hosts")
    _isolated: bool
    """Whether every circuit, and every circuit created later, is isolated."""
    _isolated_hosts: set[tuple[str, int | None]]
    """(host, port) isolated by host: circuits created later for it start isolated."""

    # Set by CircuitBreaker.__init__ (its slots).
    _key_fn: Callable[..., Hashable] | None

    def _host(self, key: Any) -> tuple[str, int | None] | None:
        """``(host, port)`` when ``key`` names a host of a per-origin breaker, else ``None``;
        a string that is neither a URL nor a host raises ``ValueError``."""
        if self._key_fn is not None or not isinstance(key, str) or canonical_origin(key):
            return None
        found = host_port(key)
        if found is None:
            raise ValueError(
                f"key must be a URL ('https://api.example.com'), a host ('api.example.com'), "
                f"a host:port ('127.0.0.1:8080'), a decorated function or None: this breaker "
                f"keeps one circuit per origin; got {show(key)}"
            )
        return found

    def _host_isolated(self, origin: URL | None) -> bool:
        return any(of_host(origin, h, p) for h, p in self._isolated_hosts)

    def _of_host(self, host: str, port: int | None) -> list[Circuit]:
        return [c for c in self._find(None) if of_host(c.key, host, port)]

    def state(self, key: Any) -> CircuitState:
        """The state of the circuit for ``key``: a URL (``str`` or ``yarl.URL``; only its
        origin matters), a function decorated with this layer, or a custom key. An unknown key is
        ``CLOSED``. An open circuit whose break is over reads as ``HALF_OPEN``.

        On a per-origin breaker (``key=None``) a bare host (``"api.example.com"``) or
        ``host:port`` (``"127.0.0.1:8080"``) means every circuit of that host (every scheme;
        with a port, that port, a scheme's default port included): the worst of their
        states (``ISOLATED``, ``OPEN``, ``HALF_OPEN``, ``CLOSED``, in that order). Any other
        string raises ``ValueError``. With a custom ``key``, strings are that key's values."""
        hp = self._host(key)
        if hp is not None:
            host, port = hp
            now = self._now()
            states = {c.state_at(now) for c in self._of_host(host, port)}
            if self._isolated or any(
                h == host and (port is None or p is None or p == port)
                for h, p in self._isolated_hosts
            ):
                states.add(ISOLATED)
            for worst in (ISOLATED, OPEN, HALF_OPEN):
                if worst in states:
                    return worst
            return CLOSED
        found = self._find(key)
        if not found:
            isolated = self._isolated or self._host_isolated(canonical_origin(key))
            return ISOLATED if isolated else CLOSED
        return found[0].state_at(self._now())

    def states(self) -> dict[str, CircuitState]:
        """Every known circuit's state, by a readable key (an origin, a function's qualified
        name, or ``str(key)``) — for health endpoints and debugging."""
        now = self._now()
        return {circuit_label(c.key): c.state_at(now) for c in self._find(None)}

    def isolate(self, key: Any = None) -> None:
        """Open the circuit for ``key`` (every circuit, and circuits created later, when
        ``None``) until :meth:`reset`: calls fail fast with ``CircuitOpen(retry_in=None)``.

        ``key`` is read as by :meth:`state`: on a per-origin breaker a bare host or
        ``host:port`` isolates every circuit of that host, and those created for it later,
        until ``reset()`` of the same host (or of everything)."""
        hp = None if key is None else self._host(key)
        if key is None:
            self._isolated = True
            found = self._find(None)
        elif hp is not None:
            self._isolated_hosts.add(hp)
            found = self._of_host(*hp)
        else:
            found = self._find(key)
            if not found:
                canonical = canonical_origin(key)
                if canonical is None:
                    wrapped = getattr(key, "__wrapped__", None)
                    canonical = wrapped if callable(wrapped) else key
                found = [self._create(canonical)]
        for circuit in found:
            if circuit.state is not ISOLATED:
                before = circuit.state
                circuit.isolate()
                self._changed(None, circuit, before, None, None)

    def reset(self, key: Any = None) -> None:
        """Close the circuit for ``key`` (every circuit when ``None``, which also ends a
        global :meth:`isolate` and every isolation by host) and forget its window; calls in
        flight no longer count. ``key`` is read as by :meth:`state`: a bare host (or
        ``host:port``) resets every circuit of that host and ends its isolation."""
        hp = None if key is None else self._host(key)
        if key is None:
            self._isolated = False
            self._isolated_hosts.clear()
            found = self._find(None)
        elif hp is not None:
            host, port = hp
            self._isolated_hosts = {
                (h, p)
                for h, p in self._isolated_hosts
                if h != host or (port is not None and p != port)
            }
            found = self._of_host(host, port)
        else:
            found = self._find(key)
        now = self._now()
        for circuit in found:
            before = circuit.state
            circuit.reset(now)
            if before is not CLOSED:
                self._changed(None, circuit, before, None, None)

    async def aisolate(self, key: Any = None) -> None:
        """:meth:`isolate`, awaitable: with a ``store``, returns once the whole fleet's state
        is written (raises ``StoreUnavailable`` if it cannot be, with ``on_error="closed"``)."""
        self.isolate(key)

    async def areset(self, key: Any = None) -> None:
        """:meth:`reset`, awaitable (see :meth:`aisolate`)."""
        self.reset(key)
