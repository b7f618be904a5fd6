"""What ``Retry`` does once an attempt did not simply succeed: classify it, decide whether one
more attempt is allowed (method, attempts, ``Retry-After``, deadlines, a replayable body, the
budget), wait, and either run the layers inside again or give up (see
:class:`resilient_http.retry.Retry`). Off the fast path: a first attempt that succeeds never
gets here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import ClientOSError, ClientResponse, ServerDisconnectedError
from aiohttp.client_exceptions import ClientConnectorError

from resilient_http._info import add, info
from resilient_http._middleware import HANDLER, REENTER, REQUEST, Call, Step
from resilient_http._retry_state import (
    IDEMPOTENCY_KEY,
    IDEMPOTENT_METHODS,
    KEYED_METHODS,
    Attempt,
    Tries,
)
from resilient_http.classify import SUCCESS, TRANSIENT, Verdict
from resilient_http.errors import BodyNotReplayable, RetriesExhausted, exhausted
from resilient_http.events import DEBUG_LOG, qualname, redact_url
from resilient_http.timeout import current_deadline

if TYPE_CHECKING:
    from resilient_http.retry import Retry

__all__ = ["judged"]


def judged(layer: Retry, call: Call, i: int, result: Any, error: BaseException | None) -> Step:
    """The exit hook's answer for an outcome the fast path did not settle: classify it, then
    succeed, retry or give up."""
    verdict = _judge(layer, result if error is None else error)
    if verdict.outcome is SUCCESS:
        return succeeded(layer, call, i, result)
    return _failed(layer, call, i, result, error, verdict)


def succeeded(layer: Retry, call: Call, i: int, result: Any) -> Step:
    """A successful attempt: after failures, say so on the response and refund the budget."""
    st = call[i]
    if type(st) is Tries:
        call[i] = None  # drop the history (its exceptions hold frames)
        _tell(result, st, st.count + 1)
        if layer.budget is not None:
            layer.budget.refund(layer._now())  # a retry that worked costs nothing
    return None


def _judge(layer: Retry, outcome: Any) -> Verdict:
    try:
        return layer._verdict(outcome)
    except BaseException:
        if isinstance(outcome, ClientResponse):
            outcome.release()
        raise


def _failed(
    layer: Retry, call: Call, i: int, result: Any, error: BaseException | None, verdict: Verdict
) -> Step:
    st = call[i]
    request = call[REQUEST]
    transient = verdict.outcome is TRANSIENT
    number = 1 if type(st) is not Tries else st.count + 1
    if not transient:
        return _give_up(layer, call, i, result, error, verdict, number, None, False)
    if (
        request is not None
        and request.method not in layer.methods
        and not (request.method in KEYED_METHODS and IDEMPOTENCY_KEY in request.headers)
    ):
        why = f"{request.method} is not retried"
        if request.method in KEYED_METHODS:
            why += f" without an {IDEMPOTENCY_KEY} header"
        return _give_up(layer, call, i, result, error, verdict, number, why, False)
    if number >= layer.attempts:
        return _give_up(layer, call, i, result, error, verdict, number, "no attempts left")
    if type(st) is not Tries:
        st = call[i] = Tries(st)
    now = layer._now()
    hint = verdict.delay
    if hint is not None:
        limit = layer.max_retry_after
        if limit is not None and hint > limit:
            why = f"the server asked to wait {hint:g} s, more than max_retry_after ({limit:g} s)"
            return _give_up(layer, call, i, result, error, verdict, number, why)
        delay = hint
    else:
        delay = layer.backoff.delay(number - 1, st.prev_delay)
    deadline = current_deadline()
    if deadline is not None and now + delay > deadline:
        why = f"waiting {delay:.3g} s would pass the deadline (in {deadline - now:.3g} s)"
        return _give_up(layer, call, i, result, error, verdict, number, why)
    if request is not None:
        total = request.session.timeout.total
        if total and now + delay - st.start > total:
            why = f"waiting {delay:.3g} s would pass the session's ClientTimeout.total"
            return _give_up(layer, call, i, result, error, verdict, number, why)
        body = request._body
        if body is not None and body.consumed:
            call[i] = None
            if isinstance(result, ClientResponse):
                result.release()
            layer._events.emit_call(
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
    budget = layer.budget
    if budget is not None:
        if budget.shared:  # one round trip to the store before the backoff sleep
            return _withdraw(layer, call, i, result, error, verdict, number, st, delay, now)
        if not budget.withdraw(now):
            return _exhausted(layer, call, i, result, error, verdict, number)
    return _schedule(layer, call, i, result, error, verdict, number, st, delay)


def _exhausted(
    layer: Retry, call: Call, i: int, result: Any, error: BaseException | None,
    verdict: Verdict, number: int,
) -> Step:
    layer._events.emit_call("retry.budget_exhausted", call, logging.INFO, attempt=number)
    return _give_up(layer, call, i, result, error, verdict, number, "retry budget exhausted")


async def _withdraw(
    layer: Retry, call: Call, i: int, result: Any, error: BaseException | None,
    verdict: Verdict, number: int, st: Tries, delay: float, now: float,
) -> Any:
    assert layer.budget is not None
    try:
        allowed = await layer.budget.awithdraw(now)
    except BaseException:
        call[i] = None
        if isinstance(result, ClientResponse):
            result.release()
        raise
    if not allowed:
        return _exhausted(layer, call, i, result, error, verdict, number)
    step = _schedule(layer, call, i, result, error, verdict, number, st, delay)
    if delay <= 0:
        return step
    return await cast(Awaitable[Any], step)  # the backoff sleep


def _schedule(
    layer: Retry, call: Call, i: int, result: Any, error: BaseException | None,
    verdict: Verdict, number: int, st: Tries, delay: float,
) -> Step:
    st.count = number
    st.prev_delay = delay
    failed = Attempt(number, verdict.outcome, verdict.reason, _status(result), error, delay)
    st.history.append(failed)
    if isinstance(result, ClientResponse):
        st.waited += info(result).waited
        result.release()
    if layer._events.hooks or DEBUG_LOG.on:
        layer._events.emit_call(
            "retry.scheduled", call, attempt=number, delay=delay, reason=verdict.reason
        )
    if delay <= 0 and layer.before_retry is None:
        return _next_attempt(layer, call, number + 1)
    return _wait(layer, call, i, delay, failed)


async def _wait(layer: Retry, call: Call, i: int, delay: float, failed: Attempt) -> Any:
    try:
        if delay > 0:
            await layer.clock.sleep(delay)
        if layer.before_retry is not None:
            await layer.before_retry(failed, call[REQUEST])
    except BaseException:
        call[i] = None  # cancelled while waiting, or the hook failed: drop history
        raise
    return _next_attempt(layer, call, failed.number + 1)


def _next_attempt(layer: Retry, call: Call, number: int) -> Step:
    """Run the layers inside again: the exit hook answers :data:`REENTER` (the layer's own
    ``enter`` does not run again)."""
    if layer._events.hooks or DEBUG_LOG.on:
        layer._events.emit_call("retry.attempt", call, attempt=number, attempts=layer.attempts)
    return cast(Step, REENTER)


def _give_up(
    layer: Retry,
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
        layer._events.emit_call(
            "retry.gave_up", call, logging.INFO, attempts=number, reason=why, last=verdict.reason
        )
    if error is None:
        if transient and stopped and layer.raise_on_exhausted:
            history = _history(st, number, verdict, result, None)
            if isinstance(result, ClientResponse):
                result.release()
            raise RetriesExhausted(_message(call, number, why, verdict), attempts=history)
        if type(st) is Tries:
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
        history = _history(st, number, verdict, result, error)
        message = _message(call, number, why, verdict)
        if rerun:  # an instance of the reset's class would make aiohttp re-send the call
            raise RetriesExhausted(message, attempts=history) from error
        raise exhausted(message, error, history) from error
    return None  # a permanent error passes through unchanged


def _history(
    st: Any, number: int, verdict: Verdict, result: Any, error: BaseException | None
) -> tuple[Attempt, ...]:
    last = Attempt(number, verdict.outcome, verdict.reason, _status(result), error, None)
    if type(st) is Tries:
        return (*st.history, last)
    return (last,)


def _message(call: Call, number: int, why: str | None, verdict: Verdict) -> str:
    what = _target(call)
    plural = "s" if number != 1 else ""
    why = why or "not retried (permanent)"
    return f"{what} failed after {number} attempt{plural} ({verdict.reason}): {why}"


def _tell(result: Any, st: Tries, attempts: int) -> None:
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
