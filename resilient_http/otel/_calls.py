"""The instrumented engine path: call and attempt durations, and per-attempt CLIENT spans.

When :func:`resilient_http.otel.instrument` is on, every HTTP call through a stack runs here
(the engine's one switch, :data:`resilient_http._middleware.TELEMETRY`) instead of the
generated fast path. The aiohttp handler (the request on the wire: the session's own
middlewares, then the connection) is wrapped, so each request sent, first or resent, is one
attempt; a cache hit or a rejection never reaches it.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from resilient_http._middleware import _Plan, run_plan
from resilient_http._redact import redact_url
from resilient_http.events import logger
from resilient_http.otel._attrs import (
    ERROR_TYPE,
    METHOD,
    PORT,
    RESEND,
    SERVER,
    STATUS,
    URL_FULL,
    method,
)
from resilient_http.otel._metrics import Metrics

# Set while an instrumented call runs: a stack nested inside it (a layer among the session's
# own middlewares) runs plainly, so one request on the wire is one attempt.
_INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("resilient_http_otel", default=False)


class Calls:
    """What :data:`TELEMETRY.run <resilient_http._middleware.TELEMETRY>` is set to."""

    def __init__(self, metrics: Metrics, tracer: Tracer | None) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.warned = False

    async def run(self, plan: _Plan, request: ClientRequest, handler: ClientHandlerType) -> Any:
        if _INSIDE.get():
            return await run_plan(plan, request, handler)
        token = _INSIDE.set(True)
        base = {METHOD: method(request.method), SERVER: request.url.raw_host or ""}
        sends = 0
        metrics = self.metrics
        tracer = self.tracer

        async def attempt(req: ClientRequest) -> ClientResponse:
            nonlocal sends
            sends += 1
            span = None
            attached = None
            if tracer is not None:
                span = self._start(tracer, req, sends - 1)
                ctx = trace.set_span_in_context(span)
                attached = context.attach(ctx)
                propagate.inject(req.headers, context=ctx)
            started = time.perf_counter()
            try:
                response = await handler(req)
            except BaseException as exc:
                _finish(span, None, exc, attached)
                metrics.attempt_duration.record(
                    time.perf_counter() - started, {**base, ERROR_TYPE: type(exc).__qualname__}
                )
                raise
            _finish(span, response.status, None, attached)
            metrics.attempt_duration.record(
                time.perf_counter() - started, {**base, **_status_attrs(response.status)}
            )
            return response

        started = time.perf_counter()
        try:
            result = await run_plan(plan, request, attempt)
        except BaseException as exc:
            metrics.call_duration.record(
                time.perf_counter() - started, {**base, ERROR_TYPE: type(exc).__qualname__}
            )
            raise
        finally:
            _INSIDE.reset(token)
        status = getattr(result, "status", None)
        attrs = {**base, **_status_attrs(status)} if type(status) is int else base
        metrics.call_duration.record(time.perf_counter() - started, attrs)
        return result

    def _start(self, tracer: Tracer, req: ClientRequest, resends: int) -> Any:
        parent = trace.get_current_span()
        if not self.warned and getattr(parent, "kind", None) is SpanKind.CLIENT:
            self.warned = True
            logger.warning(
                "resilient_http.otel: per-attempt CLIENT spans nest inside another CLIENT span "
                "(%s); with opentelemetry-instrumentation-aiohttp-client on, that span is the "
                "logical call and ours are its attempts",
                getattr(parent, "name", "?"),
            )
        url = req.url
        attrs: dict[str, Any] = {
            METHOD: method(req.method),
            URL_FULL: redact_url(url),
            SERVER: url.raw_host or "",
            PORT: url.port or 0,
        }
        if resends:
            attrs[RESEND] = resends
        name = attrs[METHOD] if attrs[METHOD] != "_OTHER" else "HTTP"
        return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)


def _status_attrs(status: int | None) -> dict[str, Any]:
    if status is None:
        return {}
    if status >= 400:
        return {STATUS: status, ERROR_TYPE: str(status)}
    return {STATUS: status}


def _finish(span: Any, status: int | None, error: BaseException | None, attached: Any) -> None:
    if attached is not None:
        context.detach(attached)
    if span is None:
        return
    if error is not None:
        span.set_attribute(ERROR_TYPE, type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
    else:
        span.set_attributes(_status_attrs(status))
        if status is not None and status >= 400:
            span.set_status(Status(StatusCode.ERROR))
    span.end()
