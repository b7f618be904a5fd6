"""OpenTelemetry for resilient_http: span events, resilience metrics, per-attempt CLIENT spans.

Needs the ``[otel]`` extra (``opentelemetry-api``); ``import resilient_http`` never imports it.
One call turns everything on, for every layer and stack of the process::

    from resilient_http import otel
    otel.instrument()                     # span events + metrics
    otel.instrument(trace_attempts=True)  # + one CLIENT span per request on the wire

What it records (names and attributes follow the OpenTelemetry HTTP semantic conventions):

- every layer event (``retry.scheduled``, ``ratelimit.waited``, ``breaker.opened``,
  ``cache.hit`` …) as a span event on the current span, with ``event.name``,
  ``resilient_http.layer``, ``server.address``, ``error.type`` where there is one, and its
  numeric details (``resilient_http.delay``, ``resilient_http.wait`` … in seconds);
- metrics, in seconds with the HTTP conventions' buckets: ``resilient_http.attempt.duration``,
  ``resilient_http.call.duration`` (waits and retries included),
  ``resilient_http.ratelimit.wait.duration``, ``resilient_http.ratelimit.requests``
  (``result=acquired|rejected``), ``resilient_http.ratelimit.queued``,
  ``resilient_http.breaker.state`` (observable: 0 closed, 1 half-open, 2 open, 3 isolated),
  ``resilient_http.breaker.transitions``, ``resilient_http.cache.requests``
  (``result=hit|miss|stale|revalidated``), ``resilient_http.retry.attempts``,
  ``resilient_http.hedge.attempts`` (``result=started|won|cancelled``); attributes
  ``server.address``, ``http.request.method``, ``http.response.status_code``,
  ``error.type``, ``resilient_http.layer`` only (never a URL);
- with ``trace_attempts=True``, one CLIENT span per request on the wire, named after the
  method, with ``http.request.method``, ``url.full`` (redacted), ``server.address``,
  ``server.port``, ``http.response.status_code``, ``error.type`` and, on a resend,
  ``http.request.resend_count`` (1, 2, …); its ``traceparent`` is injected into that
  request's headers. A cache hit, a rate-limit rejection or an open circuit sends nothing and
  makes no span.

Attempts are counted and traced by the outermost stack a request meets: a stack among the
layers' own middlewares runs inside the outer one's attempt. Give the layers as one
:class:`~resilient_http.Stack` (or ``standard()``) for one span per request on the wire;
``middlewares=(Timeout(), Retry())`` traces ``Timeout``'s one pass, retries included.

Beside ``opentelemetry-instrumentation-aiohttp-client``: its CLIENT span covers the whole
logical call (layers included) and is current while the layers run, so our attempt spans are
its children and the events land on it; the ``traceparent`` sent is the attempt's. That is two
CLIENT spans per request: the first time it happens a warning is logged.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, TracerProvider

from resilient_http import events
from resilient_http._middleware import TELEMETRY
from resilient_http.events import Event
from resilient_http.otel._attrs import event_attrs
from resilient_http.otel._calls import Calls
from resilient_http.otel._metrics import BUCKETS, Metrics

__all__ = ["instrument", "uninstrument", "is_instrumented", "BUCKETS"]

_SCOPE = "resilient_http"
_state: tuple[Calls, events.EventHook] | None = None


def _no_sdk(tracer_provider: object, meter_provider: object) -> bool:
    """Whether both providers are the API's own stand-ins (no SDK set up): then nothing
    would be recorded, and instrumenting would only cost every call its work."""
    meters = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    tracers = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    # The API's proxy meter provider is private; it is the one whose module is the API's.
    proxy_meters = type(meters).__module__.startswith("opentelemetry.metrics")
    return isinstance(tracers, (ProxyTracerProvider, NoOpTracerProvider)) and (
        proxy_meters or isinstance(meters, NoOpMeterProvider)
    )


def _span_event(event: Event) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(event.name, event_attrs(event))


def instrument(
    trace_attempts: bool = False,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> None:
    """Turn on OpenTelemetry for every resilient_http layer of the process (see the module
    docstring). Calling it again replaces the previous configuration.

    Call it after the OpenTelemetry SDK is set up: with neither an SDK's providers set globally
    nor providers passed here, nothing would be recorded, so it logs a warning and leaves the
    layers as they are (no cost on any call); :func:`is_instrumented` then says ``False``.

    Args:
        trace_attempts: also make one CLIENT span per request on the wire and inject its
            ``traceparent``. Default ``False``.
        meter_provider: where the metrics go; default the global one
            (``opentelemetry.metrics.get_meter_provider()``).
        tracer_provider: where the spans go; default the global one.
    """
    if type(trace_attempts) is not bool:
        raise TypeError(f"trace_attempts must be a bool, got {trace_attempts!r}")
    if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
        raise TypeError(f"meter_provider must be a MeterProvider or None, got {meter_provider!r}")
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise TypeError(
            f"tracer_provider must be a TracerProvider or None, got {tracer_provider!r}"
        )
    uninstrument()
    if _no_sdk(tracer_provider, meter_provider):
        logging.getLogger("resilient_http").warning(
            "otel.instrument(): no OpenTelemetry SDK is set up (the global tracer and meter "
            "providers are the API's no-op ones), so nothing would be recorded: call it after "
            "trace.set_tracer_provider() / metrics.set_meter_provider(), or pass the providers"
        )
        return
    meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
    tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider) if trace_attempts else None
    figures = Metrics(meter)
    calls = Calls(figures, tracer)

    def sink(event: Event) -> None:
        _span_event(event)
        figures.on_event(event)

    global _state
    _state = (calls, sink)
    events.add_sink(sink)
    TELEMETRY.run = calls.run


def uninstrument() -> None:
    """Turn off what :func:`instrument` turned on (no-op when it is off)."""
    global _state
    if _state is None:
        return
    sink = _state[1]
    _state = None
    TELEMETRY.run = None
    events.remove_sink(sink)


def is_instrumented() -> bool:
    """Whether :func:`instrument` is on."""
    return _state is not None
