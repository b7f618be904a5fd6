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

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, cast

from aiohttp import ClientOSError, ClientRequest, ClientResponse, ServerDisconnectedError
from aiohttp.client_exceptions import ClientConnectorError

from resilient_http._budget import RetryBudget
from resilient_http._clock import Clock, LoopClock
from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._info import add, info
from resilient_http._middleware import ARGS, HANDLER, REENTER, REQUEST, Call, Layer, Step
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
from resilient_http.classify import (
    SUCCESS,
    TRANSIENT,
    Classifier,
    Outcome,
    Verdict,
    classify,
    to_verdict,
)
from resilient_http.errors import BodyNotReplayable, RetriesExhausted, exhausted
from resilient_http.events import DEBUG_LOG, Emitter, EventHook, qualname, redact_url
from resilient_http.timeout import current_deadline

__all__ = ["Retry", "RetryBudget", "Attempt", "IDEMPOTENT_METHODS", "IDEMPOTENCY_KEY"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 §9.2.2: the methods retried by default."""
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
_KEYED_METHODS: Final = frozenset({"POST", "PATCH"})
_NEW_BUDGET: Any = object()


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened on one attempt (``RetriesExhausted.attempts`` holds one per attempt).

    Attributes:
        number: 1 for the first attempt.
        outcome: the classification.
        reason: why (``"status 503"``, ``"ServerDisconnectedError"``).
        status: the response status, or ``None`` when the attempt raised.
        error: the exception the attempt raised, or ``None``.
        delay: the wait before the next attempt, in seconds; ``None`` for the last attempt.
    """

    number: int
    outcome: Outcome
    reason: str
    status: int | None
    error: BaseException | None
    delay: float | None


BeforeRetry = Callable[[Attempt, ClientRequest | None], Awaitable[None]]
"""``Retry(before_retry=...)``: an async function of the failed :class:`Attempt` and the request
(``None`` in decorator mode), awaited before the next attempt."""


class _Tries:
    """Per-call state once a call has failed at least once."""

    __slots__ = ("start", "count", "history", "prev_delay", "waited")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.history: list[Attempt] = []
        self.prev_delay: float | None = None
        self.waited = 0.0  # rate-limit waits of the discarded responses


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
        # The loop clock's now() is time.monotonic(): call it directly on the fast path.
        self._now = time.monotonic if isinstance(self.clock, LoopClock) else self.clock.now
        callable_or_none("before_retry", before_retry)
        self.before_retry = before_retry
        self._events = Emitter("Retry", on_event)

    # -- the hooks ---------------------------------------------------------------------------

    def enter(self, call: Call, i: int) -> Step:
        # Runs once per call: a retry re-runs only the layers inside (see _next_attempt).
        call[i] = now = self._now()  # the start; a _Tries after a failure
        budget = self.budget
        if budget is not None:
            # budget.deposit(now), inlined: within the current slot it is one increment.
            if now < budget._slot_end:
                budget._fresh += 1
            else:
                budget.deposit(now)
        if self.idempotency_key:
            request = call[REQUEST]
            if (
                request is not None
                and request.method in _KEYED_METHODS
                and IDEMPOTENCY_KEY not in request.headers
            ):
                request.headers[IDEMPOTENCY_KEY] = key = str(uuid.uuid4())
                self._events.emit_call("retry.idempotency_key", call, key=key)
        if self._events.hooks or DEBUG_LOG.on:
            self._events.emit_call("retry.attempt", call, attempt=1, attempts=self.attempts)
        return None

    def exit(self, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
        if error is None:
            if self._plain:  # the default classifier's success test, inline
                if call[ARGS] is None:  # an HTTP call: a response, whose status is an int
                    ok = result.status < 400
                else:  # a decorated function's value: a status, if any, may be anything
                    status = getattr(result, "status", None)
                    ok = status is None or (type(status) is int and status < 400)
                if ok:
                    if type(call[i]) is float:
                        return None  # first attempt succeeded: nothing to clean up
                    return self._succeeded(call, i, result)
            verdict = self._judge(result)
        elif not isinstance(error, Exception):
            return None  # CancelledError, KeyboardInterrupt: never retried, never wrapped
        else:
            verdict = self._judge(error)
        if verdict.outcome is SUCCESS:
            return self._succeeded(call, i, result)
        return self._failed(call, i, result, error, verdict)

    # -- the decision ------------------------------------------------------------------------

    def _succeeded(self, call: Call, i: int, result: Any) -> Step:
        st = call[i]
        if type(st) is _Tries:
            call[i] = None  # drop the history (its exceptions hold frames)
            _tell(result, st, st.count + 1)
            if self.budget is not None:
                self.budget.refund(self._now())  # a retry that worked costs nothing
        return None

    def _judge(self, outcome: Any) -> Verdict:
        try:
            return self._verdict(outcome)
        except BaseException:
            if isinstance(outcome, ClientResponse):
                outcome.release()
            raise

    def _failed(
        self, call: Call, i: int, result: Any, error: BaseException | None, verdict: Verdict
    ) -> Step:
        st = call[i]
        request = call[REQUEST]
        transient = verdict.outcome is TRANSIENT
        number = 1 if type(st) is not _Tries else st.count + 1
        if not transient:
            return self._give_up(call, i, result, error, verdict, number, None, False)
        if (
            request is not None
            and request.method not in self.methods
            and not (request.method in _KEYED_METHODS and IDEMPOTENCY_KEY in request.headers)
        ):
            why = f"{request.method} is not retried"
            if request.method in _KEYED_METHODS:
                why += f" without an {IDEMPOTENCY_KEY} header"
            return self._give_up(call, i, result, error, verdict, number, why, False)
        if number >= self.attempts:
            return self._give_up(call, i, result, error, verdict, number, "no attempts left")
        if type(st) is not _Tries:
            st = call[i] = _Tries(st)
        now = self._now()
        hint = verdict.delay
        if hint is not None:
            if self.max_retry_after is not None and hint > self.max_retry_after:
                why = (
                    f"the server asked to wait {hint:g} s, more than max_retry_after "
                    f"({self.max_retry_after:g} s)"
                )
                return self._give_up(call, i, result, error, verdict, number, why)
            delay = hint
        else:
            delay = self.backoff.delay(number - 1, st.prev_delay)
        deadline = current_deadline()
        if deadline is not None and now + delay > deadline:
            why = f"waiting {delay:.3g} s would pass the deadline (in {deadline - now:.3g} s)"
            return self._give_up(call, i, result, error, verdict, number, why)
        if request is not None:
            total = request.session.timeout.total
            if total and now + delay - st.start > total:
                why = f"waiting {delay:.3g} s would pass the session's ClientTimeout.total"
                return self._give_up(call, i, result, error, verdict, number, why)
            body = request._body
            if body is not None and body.consumed:
                call[i] = None
                if isinstance(result, ClientResponse):
                    result.release()
                self._events.emit_call(
                    "retry.gave_up",
                    call,
                    logging.INFO,
                    attempts=number,
                    reason="the streamed request body was consumed",
                )
                raise BodyNotReplayable(
                    f"{request.method} {redact_url(request.url)}: attempt {number} failed "
                    f"({verdict.reason}) and its streamed body cannot be sent again; pass "
                    f"bytes, or a payload that can be re-read, to make it retryable"
                ) from error
        budget = self.budget
        if budget is not None:
            if budget.shared:  # one round trip to the store before the backoff sleep
                return self._withdraw(call, i, result, error, verdict, number, st, delay, now)
            if not budget.withdraw(now):
                return self._exhausted(call, i, result, error, verdict, number)
        return self._schedule(call, i, result, error, verdict, number, st, delay)

    def _exhausted(
        self, call: Call, i: int, result: Any, error: BaseException | None, verdict: Verdict,
        number: int,
    ) -> Step:
        self._events.emit_call("retry.budget_exhausted", call, logging.INFO, attempt=number)
        return self._give_up(call, i, result, error, verdict, number, "retry budget exhausted")

    async def _withdraw(
        self, call: Call, i: int, result: Any, error: BaseException | None, verdict: Verdict,
        number: int, st: _Tries, delay: float, now: float,
    ) -> Any:
        assert self.budget is not None
        try:
            allowed = await self.budget.awithdraw(now)
        except BaseException:
            call[i] = None
            if isinstance(result, ClientResponse):
                result.release()
            raise
        if not allowed:
            return self._exhausted(call, i, result, error, verdict, number)
        if delay <= 0:
            return self._schedule(call, i, result, error, verdict, number, st, delay)
        step = self._schedule(call, i, result, error, verdict, number, st, delay)
        return await cast(Awaitable[Any], step)  # the backoff sleep

    def _schedule(
        self, call: Call, i: int, result: Any, error: BaseException | None, verdict: Verdict,
        number: int, st: _Tries, delay: float,
    ) -> Step:
        st.count = number
        st.prev_delay = delay
        failed = Attempt(number, verdict.outcome, verdict.reason, _status(result), error, delay)
        st.history.append(failed)
        if isinstance(result, ClientResponse):
            st.waited += info(result).waited
            result.release()
        if self._events.hooks or DEBUG_LOG.on:
            self._events.emit_call(
                "retry.scheduled", call, attempt=number, delay=delay, reason=verdict.reason
            )
        if delay <= 0 and self.before_retry is None:
            return self._next_attempt(call, number + 1)
        return self._wait(call, i, delay, failed)

    async def _wait(self, call: Call, i: int, delay: float, failed: Attempt) -> Any:
        try:
            if delay > 0:
                await self.clock.sleep(delay)
            if self.before_retry is not None:
                await self.before_retry(failed, call[REQUEST])
        except BaseException:
            call[i] = None  # cancelled while waiting, or the hook failed: drop history
            raise
        return self._next_attempt(call, failed.number + 1)

    def _next_attempt(self, call: Call, number: int) -> Step:
        if self._events.hooks or DEBUG_LOG.on:
            self._events.emit_call("retry.attempt", call, attempt=number, attempts=self.attempts)
        return cast(Step, REENTER)

    def _give_up(
        self,
        call: Call,
        i: int,
        result: Any,
        error: BaseException | None,
        verdict: Verdict,
        number: int,
        why: str | None,
        stopped: bool = True,
    ) -> Step:
        """End the call: ``stopped`` means a transient failure the layer chose not to retry
        further (attempts, budget, deadline, Retry-After); otherwise the failure is permanent or
        the method is not retried, and an exception passes through unchanged."""
        st = call[i]
        call[i] = None
        request = call[REQUEST]
        transient = verdict.outcome is TRANSIENT
        if why is not None:
            self._events.emit_call(
                "retry.gave_up",
                call,
                logging.INFO,
                attempts=number,
                reason=why,
                last=verdict.reason,
            )
        if error is None:
            if transient and stopped and self.raise_on_exhausted:
                history = self._history(st, number, verdict, result, None)
                if isinstance(result, ClientResponse):
                    result.release()
                raise RetriesExhausted(self._message(call, number, why, verdict), attempts=history)
            if type(st) is _Tries:
                _tell(result, st, number)
            return None  # the final response passes through, as without the layer
        # aiohttp would re-send an idempotent request itself on these two errors.
        rerun = (
            request is not None
            and request.method in IDEMPOTENT_METHODS
            and isinstance(error, (ClientOSError, ServerDisconnectedError))
            and not isinstance(error, ClientConnectorError)
        )
        if (transient and stopped) or rerun:
            history = self._history(st, number, verdict, result, error)
            message = self._message(call, number, why, verdict)
            if rerun:  # an instance of the reset's class would make aiohttp re-send the call
                raise RetriesExhausted(message, attempts=history) from error
            raise exhausted(message, error, history) from error
        return None  # a permanent error passes through unchanged

    def _history(
        self, st: Any, number: int, verdict: Verdict, result: Any, error: BaseException | None
    ) -> tuple[Attempt, ...]:
        last = Attempt(number, verdict.outcome, verdict.reason, _status(result), error, None)
        if type(st) is _Tries:
            return (*st.history, last)
        return (last,)

    def _message(self, call: Call, number: int, why: str | None, verdict: Verdict) -> str:
        what = _target(call)
        plural = "s" if number != 1 else ""
        why = why or "not retried (permanent)"
        return f"{what} failed after {number} attempt{plural} ({verdict.reason}): {why}"

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


def _tell(result: Any, st: _Tries, attempts: int) -> None:
    """Say on the response of a retried call how many attempts it took (``rh.info``)."""
    if isinstance(result, ClientResponse):
        add(result, attempts=attempts, waited=info(result).waited + st.waited)


def _status(result: Any) -> int | None:
    status = getattr(result, "status", None)
    return status if type(status) is int else None


def _target(call: Call) -> str:
    request = call[REQUEST]
    if request is not None:
        return f"{request.method} {redact_url(request.url)}"
    return f"{qualname(call[HANDLER])}()"
