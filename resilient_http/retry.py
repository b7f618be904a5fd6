"""``Retry``: try again after a transient failure, with backoff, a budget and honest counting.

Per call, after each attempt the layer classifies the outcome (:mod:`resilient_http.classify`)
and, for a transient failure, decides whether one more attempt is allowed: the method must be
idempotent (or carry an ``Idempotency-Key``), attempts must remain, the request body must be
replayable, the wait (``Retry-After``/rate-limit hint, else the :class:`Backoff`) must fit
under ``max_retry_after``, the outer ``Timeout``'s deadline and the session's
``ClientTimeout.total``, and the shared :class:`RetryBudget` must allow it. Then it releases
the discarded response, sleeps on its clock and runs the layers inside it again.

``attempts`` counts requests on the wire. aiohttp re-runs a whole middleware chain by itself
once when an idempotent request meets a reset (``ClientOSError``/``ServerDisconnectedError``)
on a reused connection; the layer never lets those two errors escape for such a request (it
raises :class:`~resilient_http.errors.RetriesExhausted`, chained to the reset, instead), so
aiohttp's extra pass never happens behind its back. Any other last exception is raised as a
``RetriesExhausted`` that is also an instance of its class (a refused connection is still an
``aiohttp.ClientConnectorError``, a timeout still an ``asyncio.TimeoutError``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from time import monotonic as _monotonic
from typing import Any

from resilient_http._budget import RetryBudget
from resilient_http._clock import Clock, LoopClock
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._middleware import REQUEST, Call, Layer, Step
from resilient_http._retry_failure import judged, succeeded
from resilient_http._retry_state import (
    IDEMPOTENCY_KEY,
    IDEMPOTENT_METHODS,
    KEYED_METHODS,
    Attempt,
    BeforeRetry,
)
from resilient_http._validate import (
    callable_or_none,
    clock_or_default,
    collection,
    flag,
    names,
    optional_duration,
    positive_int,
    show,
)
from resilient_http.backoff import Backoff
from resilient_http.classify import Classifier, Verdict, classify, to_verdict
from resilient_http.events import DEBUG_LOG, Emitter, EventHook

__all__ = [
    "Retry", "RetryBudget", "Attempt", "IDEMPOTENT_METHODS", "IDEMPOTENCY_KEY",
]

_KEYED_METHODS = KEYED_METHODS  # hedge imports it from here

_NEW_BUDGET: Any = object()


class Retry(Layer):
    """Retry transient failures with exponential backoff and jitter.

    Args:
        attempts: requests on the wire per call, the first included (4 = 1 + 3 retries);
            >= 1. Default 4.
        backoff: the waits between attempts; default ``Backoff()`` (full jitter, 0.1 s base,
            doubling, 10 s cap).
        classify: a callable receiving the response (or returned value) or the exception and
            returning an :class:`~resilient_http.classify.Outcome`, a
            :class:`~resilient_http.classify.Verdict` (with a delay) or ``None`` for the
            default; default :func:`resilient_http.classify.classify`.
        statuses: extra statuses to retry (e.g. ``{409}``). Default none.
        exceptions: extra exception types to retry. Default none.
        methods: the methods retried (uppercase); default RFC 9110's idempotent ones (GET,
            HEAD, OPTIONS, TRACE, PUT, DELETE). POST and PATCH are retried too when the
            request carries an ``Idempotency-Key`` header.
        max_retry_after: the longest server-requested wait (``Retry-After``, rate-limit
            reset) honoured, in seconds or a ``timedelta``; a longer one gives up at once.
            ``None``: no limit. Default 60.
        budget: a :class:`RetryBudget` shared by every call through this layer; ``None``
            disables it. Default: a new ``RetryBudget()`` (20 % of requests + 10/s over 10 s;
            a retry that succeeds is refunded).
        idempotency_key: when true, a POST or PATCH without an ``Idempotency-Key`` header
            gets one (a UUID4, the same on every attempt), so it can be retried. Default
            ``False``.
        raise_on_exhausted: when true, a final transient *response* (e.g. a 503 after the
            last attempt) raises ``RetriesExhausted`` instead of being returned. Default
            ``False``: the response passes through, as it would without the layer.
        stream: when true, only the headers are covered: the body is left for the caller to
            stream and a failure while reading it is not retried. Default ``False`` (the body
            is read inside the attempt, so a truncated body is retried).
        clock: the time source for sleeps and deadlines; default the event loop's.
        before_retry: an async function awaited before each retry, after the backoff wait
            and before the next attempt, as ``await before_retry(attempt, request)``:
            ``attempt`` is the :class:`Attempt` that failed (number, outcome, reason,
            status, error, delay), ``request`` the aiohttp request about to be sent again
            (``None`` in decorator mode). It may change the request (a refreshed token in
            ``request.headers``); an exception it raises ends the call with that
            exception. Default ``None``.
        on_event: hook(s) receiving the layer's events (see below).

    Deadlines: the layer never starts a wait that would end past the deadline of an outer
    :class:`~resilient_http.Timeout` (:func:`~resilient_http.current_deadline`) or past the
    session's ``ClientTimeout.total`` (counted from the first attempt); it gives up at once
    instead. A per-request ``timeout=`` argument is invisible to middlewares and not counted.

    On giving up: a final response is returned as is (unless ``raise_on_exhausted``); a final
    transient exception raises :class:`~resilient_http.errors.RetriesExhausted` chained to it,
    with ``.attempts`` (a tuple of :class:`Attempt`), which is also an instance of that
    exception's class (``except aiohttp.ClientConnectorError`` still catches a refused
    connection; after a reset on an idempotent request it is a plain ``RetriesExhausted``, as
    aiohttp would re-send the call itself on a reset); a permanent exception passes through
    unchanged. ``asyncio.CancelledError`` is never retried nor wrapped. A consumed streamed
    request body is never replayed: :class:`~resilient_http.errors.BodyNotReplayable`.

    Events: ``retry.attempt`` (every attempt, DEBUG), ``retry.scheduled`` (delay, reason),
    ``retry.gave_up`` (INFO), ``retry.budget_exhausted`` (INFO), ``retry.idempotency_key``.

    In decorator mode every call is retried (no method check) on transient exceptions; an
    ``aiohttp.ClientResponseError`` is classified by its status.

    Pickling or copying it (``copy.copy``, ``copy.deepcopy``) gives a new layer with the same
    configuration and none of the state (see the README's "Pickling and copying").
    """

    __slots__ = (
        "_config",
        "attempts",
        "backoff",
        "classify",
        "methods",
        "max_retry_after",
        "budget",
        "idempotency_key",
        "raise_on_exhausted",
        "stream",
        "clock",
        "before_retry",
        "reads_body",
        "_now",
        "_verdict",
        "_plain",
        "_events",
        "_announces",
        "_lean",
    )

    __reduce__ = fresh_reduce

    def __init__(
        self,
        attempts: int = 4,
        *,
        backoff: Backoff | None = None,
        classify: Callable[[Any], Any] | None = None,
        statuses: Iterable[int] = (),
        exceptions: Iterable[type[BaseException]] = (),
        methods: Iterable[str] = IDEMPOTENT_METHODS,
        max_retry_after: float | timedelta | None = 60.0,
        budget: RetryBudget | None = _NEW_BUDGET,
        idempotency_key: bool = False,
        raise_on_exhausted: bool = False,
        stream: bool = False,
        clock: Clock | None = None,
        before_retry: BeforeRetry | None = None,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        self._config = config_of(locals())
        if budget is _NEW_BUDGET:
            del self._config["budget"]  # each copy makes its own, as this layer did
        self.attempts = positive_int("attempts", attempts)
        if backoff is None:
            backoff = Backoff()
        elif not isinstance(backoff, Backoff):
            raise TypeError(
                f"backoff must be a Backoff, got {type(backoff).__name__} {show(backoff)}"
            )
        self.backoff = backoff
        callable_or_none("classify", classify)
        statuses = collection("statuses", statuses, "ints (HTTP status codes)")
        exceptions = (
            (exceptions,)
            if isinstance(exceptions, type)
            else collection("exceptions", exceptions, "Exception subclasses")
        )
        self.classify: Callable[[Any], Any] | None = classify
        if statuses or exceptions:
            fallback = classify if classify is not None else _default
            self._verdict: Callable[[Any], Verdict] = Classifier(
                statuses=statuses, exceptions=exceptions, fallback=fallback
            )
        elif classify is not None:
            user = classify
            self._verdict = lambda outcome: to_verdict(user(outcome), outcome)
        else:
            self._verdict = _default
        self._plain = classify is None and not statuses
        self.methods = names("methods", methods)
        self.max_retry_after = optional_duration(
            "max_retry_after", max_retry_after, allow_zero=True
        )
        if budget is _NEW_BUDGET:
            budget = RetryBudget()
        elif budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget or None, got {show(budget)}")
        self.budget = budget
        self.idempotency_key = flag("idempotency_key", idempotency_key)
        self.raise_on_exhausted = flag("raise_on_exhausted", raise_on_exhausted)
        self.stream = flag("stream", stream)
        self.reads_body = not stream
        self.clock: Clock = clock_or_default(clock)
        self._now = _monotonic if isinstance(self.clock, LoopClock) else self.clock.now
        callable_or_none("before_retry", before_retry)
        self.before_retry = before_retry
        self._events = Emitter("Retry", on_event)
        self._announces = self.idempotency_key or bool(self._events.hooks)
        self._lean = self._now is _monotonic and budget is not None and not self._announces

    # -- the hooks ---------------------------------------------------------------------------

    def enter(self, call: Call, i: int) -> Step:
        # Runs once per call: a retry re-runs only the layers inside (see _retry_failure). The
        # slot gets the start (a Tries after a failure). The common configuration (the loop's
        # clock, a local budget, no idempotency key, no event hooks) is one flag; the loop
        # clock's time.monotonic() is called as a global, cheaper than through a slot.
        if self._lean:
            call[i] = now = _monotonic()
            budget = self.budget
            # budget.deposit(now), inlined: within the current slot it is one increment.
            if now < budget._slot_end:  # type: ignore[union-attr]
                budget._fresh += 1  # type: ignore[union-attr]
            else:
                budget.deposit(now)  # type: ignore[union-attr]
            if DEBUG_LOG.on:
                self._announce(call)
            return None
        call[i] = now = self._now()
        budget = self.budget
        if budget is not None:
            if now < budget._slot_end:
                budget._fresh += 1
            else:
                budget.deposit(now)
        if self._announces or DEBUG_LOG.on:
            self._announce(call)
        return None

    def _announce(self, call: Call) -> None:
        """The first attempt's idempotency key and ``retry.attempt`` event."""
        if self.idempotency_key:
            request = call[REQUEST]
            if (
                request is not None
                and request.method in KEYED_METHODS
                and IDEMPOTENCY_KEY not in request.headers
            ):
                request.headers[IDEMPOTENCY_KEY] = key = str(uuid.uuid4())
                self._events.emit_call("retry.idempotency_key", call, key=key)
        if self._events.hooks or DEBUG_LOG.on:
            self._events.emit_call("retry.attempt", call, attempt=1, attempts=self.attempts)

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        if error is None:
            if self._plain:  # the default classifier's success test, inline
                if call[2] is None:  # call[ARGS]: an HTTP call, a response whose status is an int
                    if result.status < 400 and type(call[i]) is float:
                        return None  # the first attempt succeeded: nothing to clean up
                    ok = result.status < 400
                else:  # a decorated function's value: a status, if any, may be anything
                    status = getattr(result, "status", None)
                    ok = status is None or (type(status) is int and status < 400)
                if ok:
                    return succeeded(self, call, i, result)
        elif not isinstance(error, Exception):
            return None  # CancelledError, KeyboardInterrupt: never retried, never wrapped
        return judged(self, call, i, result, error)

    def __repr__(self) -> str:
        parts = [f"attempts={self.attempts}", f"backoff={self.backoff!r}"]
        if self.budget is None:
            parts.append("budget=None")
        if self.stream:
            parts.append("stream=True")
        if self.idempotency_key:
            parts.append("idempotency_key=True")
        return f"Retry({', '.join(parts)})"


def _default(outcome: Any) -> Verdict:
    return classify(outcome)
