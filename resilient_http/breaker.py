"""``CircuitBreaker``: stop calling a host that is failing, then probe it back to health.

Per key (by default the request's origin: scheme, host and port), a circuit counts the
outcomes of recent calls in a sliding window. When at least ``min_throughput`` calls in the
window ended and at least ``failure_ratio`` of them failed, the circuit *opens*: calls fail
fast with :class:`~resilient_http.CircuitOpen` (carrying ``retry_in``) and nothing is sent.
After ``break_for`` the circuit is *half-open*: up to ``half_open_probes`` calls go through
at once; the first to succeed closes the circuit, the first to fail opens it again for
``break_for``. A probe that is cancelled frees its slot and decides nothing.

The state machine lives in :mod:`resilient_http._circuit` (pure, clock passed in), the
default failure predicate in :mod:`resilient_http._failure`. This module holds the layer's
configuration, its hooks (the fast path) and its origin lookup; its base classes the rest:
circuits by key (:mod:`resilient_http._breaker_circuits`), manual control
(:mod:`resilient_http._breaker_control`), outcomes off the fast path, admission and events
(:mod:`resilient_http._breaker_outcomes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import ClientResponse
from yarl import URL

from resilient_http._breaker_circuits import BreakerCircuits
from resilient_http._circuit import CLOSED, Circuit, CircuitState, Ticket
from resilient_http._clock import Clock, LoopClock
from resilient_http._failure import is_transient_failure
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._middleware import REQUEST, Call, Step
from resilient_http._validate import (
    callable_or_none,
    clock_or_default,
    duration,
    positive_int,
    ratio,
    show,
)
from resilient_http.events import Emitter, EventHook

if TYPE_CHECKING:
    from resilient_http.redis.store import RedisStore

__all__ = ["CircuitBreaker", "CircuitState", "is_transient_failure"]

_PRUNE_AT = 4096
"""Circuits kept before idle (closed, failure-free) ones are dropped."""


_YARL_SLOTS = all(hasattr(URL("http://h"), a) for a in ("_scheme", "_netloc"))
"""Whether this yarl keeps the URL's parts in the slots the fast origin key reads."""


class CircuitBreaker(BreakerCircuits):
    """Fail fast while a host is failing; probe it back to health.

    Place it inside ``Retry`` (so each attempt counts and a rejected attempt costs no
    request) and outside ``RateLimit`` and the per-attempt ``Timeout`` (so a timed-out
    attempt counts as a failure), as ``standard()`` does.

    Defaults are chosen for HTTP APIs called from one client process. Polly's defaults
    (ratio 0.1, throughput 100, sampling 30 s, break 5 s) suit a busy .NET service: from a
    client a ratio of 0.1 opens on the background 5-20 % of 503s that ``Retry`` absorbs
    easily, turning a mostly healthy API into a total outage, and 100 calls per 30 s means
    a client under 3.3 requests/s could never open the circuit. The ratio and throughput
    follow Hystrix (50 %, 20 calls): 20 samples at a true failure rate of 20 % reach 50 %
    by chance about once in 400 windows, while a real outage still opens in 20 calls. The
    window (30 s) and the break (5 s) are Polly's. Example::

        breaker = rh.CircuitBreaker(min_throughput=10, break_for=15)
        session = aiohttp.ClientSession(middlewares=(breaker,))
        ...
        except rh.CircuitOpen as exc:  # nothing was sent
            schedule_later(exc.retry_in)

    Args:
        failure_ratio: share of failed calls in the window that opens the circuit,
            ``0 < ratio <= 1``. Default ``0.5``.
        min_throughput: calls that must have ended in the window before it may open
            (>= 1). Default ``20``.
        window: length of the sliding window of outcomes, in seconds or a ``timedelta``;
            it slides in steps of a tenth of its length. Default ``30``.
        break_for: how long an open circuit fails fast before letting probes through, in
            seconds or a ``timedelta``. Default ``5``.
        half_open_probes: how many probe calls may be in flight at once while half-open
            (>= 1). The first probe to succeed closes the circuit; the first to fail opens
            it again. A probe holds its slot until it ends, so bound probes with a
            per-attempt ``Timeout`` inside the breaker (``standard()`` has one). Default
            ``1``.
        key: which circuit a call belongs to. ``None`` (default): one circuit per origin
            (scheme, host and port) of the request; in decorator mode one circuit per
            decorated function. A ``str``: one named circuit for every call through this
            layer. A callable: called with the ``aiohttp.ClientRequest`` (with the decorated
            function's arguments in decorator mode), returns any hashable key.
        is_failure: ``(result, error) -> bool`` deciding whether a call failed; ``result``
            is the response (or the decorated function's return value) when ``error`` is
            ``None``. Default :func:`is_transient_failure` (connection errors, timeouts,
            broken bodies, 5xx except 501/505; **not** 429). Calls that are cancelled, or
            refused by an inner layer before anything was sent (``CircuitOpen``,
            ``RateLimitExceeded``, ``BodyNotReplayable``), are never passed to it: they
            count as neither success nor failure, and a probe among them frees its slot.
        clock: the time source; default the event loop's clock. Tests pass a ``FakeClock``.
        on_event: a hook or hooks receiving every :class:`~resilient_http.Event`:
            ``breaker.opened``, ``breaker.half_opened``, ``breaker.closed``,
            ``breaker.isolated`` (logged at INFO) and ``breaker.rejected`` (DEBUG).
        store: ``None`` (default): the circuits live in this process. A
            :class:`~resilient_http.RedisStore`: every process using the same store shares
            each circuit's state, window and probe slots (see
            :mod:`resilient_http.redis.breaker`); the closed path stays synchronous, the
            state is refreshed at most every 0.25 s while calls end and after each failure,
            and :meth:`isolate` / :meth:`reset` act on the whole fleet (``await``
            :meth:`aisolate` / :meth:`areset` to wait until the fleet's state is written).

    Raises:
        CircuitOpen: from a call while its circuit is open, half-open with every probe slot
            taken, or isolated. It is an ``aiohttp.ClientConnectionError``; ``retry_in`` says
            when to try again (``None`` while isolated).

    The layer only sees the response headers unless a layer of the stack reads the body
    (``Timeout`` and ``Retry`` do by default), so a truncated body counts as a failure only
    then. Manual control: :meth:`state`, :meth:`states`, :meth:`isolate`, :meth:`reset`.
    One breaker serves one event loop (like an aiohttp session).

    Pickling or copying it (``copy.copy``, ``copy.deepcopy``) gives a new layer with the same
    configuration and none of the state (see the README's "Pickling and copying").
    """

    __slots__ = (
        "_config",
        "failure_ratio",
        "min_throughput",
        "window",
        "break_for",
        "half_open_probes",
        "key",
        "is_failure",
        "clock",
        "_clock_now",
        "_key_fn",
        "_events",
        "_circuits",
        "_origins",
        "_prune_at",
    )

    __reduce__ = fresh_reduce

    def __new__(cls, *args: Any, store: Any = None, **kwargs: Any) -> CircuitBreaker:
        if store is not None and cls is CircuitBreaker:
            from resilient_http.redis.breaker import SharedCircuitBreaker

            cls = SharedCircuitBreaker
        return super().__new__(cls)

    def __init__(
        self,
        failure_ratio: float = 0.5,
        *,
        min_throughput: int = 20,
        window: float | timedelta = 30.0,
        break_for: float | timedelta = 5.0,
        half_open_probes: int = 1,
        key: str | Callable[..., Hashable] | None = None,
        is_failure: Callable[[Any, BaseException | None], bool] | None = None,
        clock: Clock | None = None,
        on_event: EventHook | Sequence[EventHook] | None = None,
        store: RedisStore | None = None,
    ) -> None:
        self._config = config_of(locals())

        if store is not None:
            raise TypeError(
                f"store= is only supported by CircuitBreaker itself, not by "
                f"{type(self).__name__}, got {show(store)}"
            )
        self.failure_ratio: float = ratio("failure_ratio", failure_ratio)
        if self.failure_ratio <= 0:
            raise ValueError(
                f"failure_ratio must be > 0 and <= 1 (a share of failed calls), "
                f"got {show(failure_ratio)}"
            )
        self.min_throughput: int = positive_int("min_throughput", min_throughput)
        self.window: float = duration("window", window)
        self.break_for: float = duration("break_for", break_for)
        self.half_open_probes: int = positive_int("half_open_probes", half_open_probes)
        if isinstance(key, str):
            name = key
            self._key_fn: Callable[..., Hashable] | None = lambda *_a, **_k: name
        elif key is None or callable(key):
            self._key_fn = key
        else:
            raise TypeError(
                f"key must be None (per origin), a str (one named circuit) or a callable "
                f"returning a hashable key, got {type(key).__name__} {show(key)}"
            )
        self.key = key
        self.is_failure = callable_or_none("is_failure", is_failure)
        self.clock: Clock = clock_or_default(clock)
        # The loop clock's now() is time.monotonic(): call that directly (no Python frame).
        self._clock_now: Callable[[], float] = (
            time.monotonic if type(self.clock) is LoopClock else self.clock.now
        )
        self._events = Emitter("CircuitBreaker", on_event)
        self._circuits: dict[Hashable, Circuit] = {}
        self._origins: dict[str, dict[str, Circuit]] = {}
        """scheme -> netloc -> circuit: the (scheme, netloc) keys of _circuits, for enter."""
        self._prune_at = _PRUNE_AT
        self._isolated = False
        self._isolated_hosts = set()

    # -- the layer hooks ---------------------------------------------------------------------

    def enter(self, call: Call, i: int) -> Step:
        request = call[REQUEST]
        if request is not None and self._key_fn is None:
            url = request.url
            try:
                # By the strs in yarl's slots: two dict lookups cost less than building and
                # hashing a (scheme, netloc) tuple (hashing a URL runs Python code). A
                # subscript, not .get(): a method call costs more than the KeyError that only
                # a new origin raises.
                circuit = self._origins[url._scheme][url._netloc]
            except (KeyError, AttributeError):  # a new origin (or a yarl without the slots)
                circuit = self._origin_circuit(url)
        else:
            circuit = self._keyed_circuit(call, request)
        if circuit.state is CLOSED:
            call[i] = circuit.ticket
            return None
        return self._admit(call, i, circuit)

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        # The engine calls exit only after this layer's enter completed, and enter always
        # leaves a ticket in call[i] (or raises): no check, and nothing to clear (the next
        # pass's enter writes its own).
        if (
            error is None
            and self.is_failure is None
            and (not isinstance(result, ClientResponse) or result.status < 500)
        ):
            # A success (what is_transient_failure says of it): circuit.success(ticket, now)
            # with its short way inlined, the common case of a closed circuit. (The clock is
            # read through a local: self._clock_now() would be a method lookup that Python
            # 3.11 cannot specialize for a callable kept in a slot.)
            ticket: Ticket = call[i]
            clock_now = self._clock_now
            now = clock_now()
            if now < ticket.end:
                ticket.circuit.ok += 1
                return None
            self._record(call, ticket, False, now, result, None)
            return None
        return self._settle(call, call[i], result, error)

    # -- from calls to circuits ---------------------------------------------------------------

    def _origin_circuit(self, url: URL) -> Circuit:
        # The origin as (scheme, netloc) read from yarl's slots, remembered in _origins for
        # enter. A netloc with credentials is not remembered and falls back to url.origin(),
        # so no secret is kept in a long-lived key. Spellings of one origin are aliases of
        # one circuit (see _create).
        if _YARL_SLOTS and "@" not in (netloc := url._netloc):
            key: Hashable = (url._scheme, netloc)
        else:
            key = url.origin()
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._create(key, url)  # may prune, which empties _origins
        if _YARL_SLOTS:
            netlocs = self._origins.get(url._scheme)
            if netlocs is None:
                netlocs = self._origins[url._scheme] = {}
            if type(key) is tuple:
                netlocs[netloc] = circuit
        return circuit

    def _prune(self) -> None:
        now = self._now()
        circuits = self._circuits
        idle = [k for k, c in circuits.items() if c.state is CLOSED and c.counts(now)[0] == 0]
        for k in idle:
            del self._circuits[k]
        self._origins.clear()  # refilled by the next call to each origin
        self._prune_at = max(_PRUNE_AT, 2 * len(self._circuits))

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_ratio={self.failure_ratio:g}, "
            f"min_throughput={self.min_throughput}, window={self.window:g}, "
            f"break_for={self.break_for:g}, half_open_probes={self.half_open_probes})"
        )
