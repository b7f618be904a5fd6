"""``Hedge``: when an attempt is slow, send another one and keep the first good answer.

"The Tail at Scale" (Dean and Barroso): a request still unanswered after the 95th-percentile
latency is probably stuck behind something (a slow replica, a GC pause, a lost packet); a
second copy sent then usually answers long before the first, for a few percent more load.

Per call, the layer runs the layers inside it (and the request) itself, through the
engine's :data:`~resilient_http._middleware.FORK`: the first attempt in the call's own task,
and each time ``delay`` passes without a good answer, another one in a task of its own, up to
``max_hedges`` more. The body is read inside the attempt, so a response whose body drips
counts as slow. The first good answer wins (a response that is not a transient failure: a
2xx, a 404 — or a decorated function's value); the other attempts are cancelled, their
connections closed or returned to the pool, a response that arrived anyway released. A
failure (an exception, a 503) does not end the call while another attempt still runs; when
all have failed, the last failure is the outcome, for a ``Retry`` outside to judge.

Hedges draw on a :class:`~resilient_http.RetryBudget` and are never refunded (a hedge adds
load whether or not it wins), so a server that is slow because it is overloaded is not hit
twice as hard: past the budget, calls just wait for their first attempt.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Final, cast

from aiohttp.payload import BytesPayload

from resilient_http._budget import RetryBudget
from resilient_http._clock import Clock, LoopClock
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._latency import Latencies, parse_quantile
from resilient_http._middleware import FORK, HANDLER, REQUEST, Call, Inner, Layer, Short, Step
from resilient_http._race import INLINE, Race
from resilient_http._validate import clock_or_default, duration, names, positive_int, show
from resilient_http.events import Emitter, EventHook
from resilient_http.retry import _KEYED_METHODS, IDEMPOTENCY_KEY, IDEMPOTENT_METHODS, Retry

__all__ = ["Hedge", "WARMUP_SAMPLES"]

WARMUP_SAMPLES: Final = 20
"""Latencies a host needs before a ``"pNN"`` delay is learnt from them (``warmup`` before)."""
class _Share:
    """The default ``budget``: one object, also after pickling (its name is its reduction)."""

    def __reduce__(self) -> str:
        return "_SHARE"

    def __repr__(self) -> str:
        return "<the Retry's budget, else the layer's own>"


_SHARE: Any = _Share()


class Hedge(Layer):
    """Send a second attempt when the first is slow; the first good answer wins.

    Args:
        delay: how long an attempt may go unanswered (headers and body) before the next one
            starts: seconds (``float``, > 0) or a ``timedelta``, or ``"pNN"`` (e.g. ``"p95"``,
            ``"p99.5"``): that percentile of the host's recent latencies (the last 256
            answers per host, 1,024 hosts at most), never below ``floor``, and ``warmup``
            until the host has answered 20 times. Default ``"p95"``: about 5 % of calls
            get a hedge.
        max_hedges: extra attempts per call at most, >= 1; the k-th starts ``k * delay`` after
            the first. Default 1.
        budget: the :class:`~resilient_http.RetryBudget` each hedge withdraws from (never
            refunded). Default: the budget of the ``Retry`` outside this layer in the same
            stack (so retries and hedges share one cap), else a ``RetryBudget()`` of the
            layer's own (20 % of calls + 10/s over 10 s). ``None``: no cap. A budget given
            here is shared the same way: the calls are counted once, by the ``Retry`` that
            holds it if there is one outside, else by this layer.
        floor: the shortest learnt delay, in seconds or a ``timedelta``. Default 0.005.
        warmup: the delay while a host's latencies are being learnt, in seconds or a
            ``timedelta``. Default 0.5.
        methods: the methods hedged (uppercase); default RFC 9110's idempotent ones (GET,
            HEAD, OPTIONS, TRACE, PUT, DELETE); POST and PATCH are hedged when the request
            carries an ``Idempotency-Key`` header. Other requests, and requests whose body is
            a stream (it cannot be sent twice), pass straight through.
        clock: the time source for the delay and latencies; default the event loop's.
        on_event: hook(s) receiving the layer's events.

    Place it where ``Retry`` goes, inside it: ``Timeout(total) → Retry → Hedge →
    CircuitBreaker → RateLimit → Timeout(attempt)``; each hedge is a real request that
    takes its own rate-limit token and attempt timeout. The first attempt runs in the
    call's own task (in a task of its own on Python 3.10), each hedge in a task of its own.

    Events: ``hedge.started`` (attempt, after: seconds since the first), ``hedge.won``
    (attempt, attempts), ``hedge.cancelled`` (attempts cancelled), ``hedge.budget_exhausted``
    (INFO).

    In decorator mode every call is hedged: the decorated function runs again.
    """

    __slots__ = (
        "_config",
        "delay",
        "quantile",
        "max_hedges",
        "budget",
        "floor",
        "warmup",
        "methods",
        "clock",
        "latencies",
        "_share",
        "_now",
        "_events",
    )
    reads_body = True
    __reduce__ = fresh_reduce  # a copy has the configuration, not the latencies learnt

    def __init__(
        self,
        delay: float | timedelta | str = "p95",
        *,
        max_hedges: int = 1,
        budget: RetryBudget | None = _SHARE,
        floor: float | timedelta = 0.005,
        warmup: float | timedelta = 0.5,
        methods: Iterable[str] = IDEMPOTENT_METHODS,
        clock: Clock | None = None,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        self._config = config_of(locals())
        self.quantile: float | None = None
        self.delay: float | None = None
        if isinstance(delay, str):
            self.quantile = parse_quantile(delay)
        else:
            self.delay = duration("delay", delay)
        self.max_hedges = positive_int("max_hedges", max_hedges)
        self._share = budget is _SHARE
        if self._share:
            budget = RetryBudget()
        elif budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget or None, got {show(budget)}")
        self.budget: RetryBudget | None = budget
        """The layer's budget (by default used only without a ``Retry`` outside)."""
        self.floor = duration("floor", floor, allow_zero=True)
        self.warmup = duration("warmup", warmup)
        self.methods = names("methods", methods)
        self.clock: Clock = clock_or_default(clock)
        self._now = time.monotonic if isinstance(self.clock, LoopClock) else self.clock.now
        self.latencies = Latencies()
        """Recent latencies per host (per function in decorator mode)."""
        self._events = Emitter("Hedge", on_event)

    def enter(self, call: Call, i: int) -> Step:
        request = call[REQUEST]
        if request is None:
            return cast(Step, FORK)
        method = request.method
        if method not in self.methods and not (
            method in _KEYED_METHODS and IDEMPOTENCY_KEY in request.headers
        ):
            return None
        body = request._body
        if body is not None and not isinstance(body, BytesPayload):
            return None  # a stream: it cannot be sent twice
        return cast(Step, FORK)

    def delay_for(self, key: Any) -> float:
        """The delay before a hedge for calls to ``key`` (a host, see :attr:`latencies`)."""
        if self.quantile is None:
            assert self.delay is not None
            return self.delay
        ring = self.latencies.get(key)
        if ring is None or ring.count < WARMUP_SAMPLES:
            return self.warmup
        return max(self.floor, ring.quantile(self.quantile))

    def _budget(self, inner: Inner) -> tuple[RetryBudget | None, bool]:
        """The budget to draw on, and whether this layer counts the call in it."""
        if self._share:  # the default: the budget of a Retry outside, else our own
            for layer in reversed(inner.outer):
                if isinstance(layer, Retry) and layer.budget is not None:
                    return layer.budget, False
            return self.budget, True
        budget = self.budget
        if budget is None:
            return None, False
        counted = any(isinstance(x, Retry) and x.budget is budget for x in inner.outer)
        return budget, not counted

    async def fork(self, inner: Inner) -> Short | None:
        call = inner.call
        request = call[REQUEST]
        key = (request.url.host, request.url.port) if request is not None else call[HANDLER]
        budget, counts = self._budget(inner)
        start = self._now()
        if counts and budget is not None:
            budget.deposit(start)
        race = Race(self, inner, budget, self.delay_for(key), start, self.latencies.ring(key))
        try:
            if INLINE:  # the first attempt in the call's own task: no task, no extra wake-up
                won = await race.first()
                if won is not None:
                    return won
            else:
                race.start(start)
                race.arm()
            while True:
                while race.finished:
                    won = race.judge()
                    if won is not None:
                        return won
                if not race.running:
                    return race.give_up()
                await race.next()
        finally:
            race.stop()

    def __repr__(self) -> str:
        delay = f"'p{self.quantile * 100:g}'" if self.quantile is not None else f"{self.delay:g}"
        extra = f", max_hedges={self.max_hedges}" if self.max_hedges != 1 else ""
        return f"Hedge({delay}{extra})"
