"""The resilience metrics, fed by the layers' events and by the instrumented engine.

Seconds as the unit, the HTTP conventions' histogram buckets, low-cardinality attributes only
(:mod:`resilient_http.otel._attrs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from resilient_http.events import Event
from resilient_http.otel._attrs import metric_attrs

BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""The HTTP semantic conventions' explicit bucket boundaries for durations, in seconds."""

_STATES: Final = {
    "breaker.closed": ("closed", 0),
    "breaker.half_opened": ("half_open", 1),
    "breaker.opened": ("open", 2),
    "breaker.isolated": ("isolated", 3),
}
_CACHE: Final = {
    "cache.hit": "hit",
    "cache.miss": "miss",
    "cache.served_stale": "stale",
    "cache.revalidated": "revalidated",
}
_HEDGE: Final = {"hedge.started": "started", "hedge.won": "won", "hedge.cancelled": "cancelled"}


class Metrics:
    """Every instrument, and the event handler that feeds them."""

    def __init__(self, meter: Meter) -> None:
        def seconds(name: str, what: str) -> Any:
            return meter.create_histogram(
                name, unit="s", description=what, explicit_bucket_boundaries_advisory=BUCKETS
            )

        self.attempt_duration = seconds(
            "resilient_http.attempt.duration", "Duration of one request on the wire."
        )
        self.call_duration = seconds(
            "resilient_http.call.duration",
            "Duration of one call through the layers, waits and retries included.",
        )
        self.wait_duration = seconds(
            "resilient_http.ratelimit.wait.duration", "Time a request waited for a token."
        )
        self.ratelimit = meter.create_counter(
            "resilient_http.ratelimit.requests", "{request}", "Requests by rate-limit result."
        )
        self.queued = meter.create_counter(
            "resilient_http.ratelimit.queued", "{request}", "Requests that queued for a token."
        )
        self.transitions = meter.create_counter(
            "resilient_http.breaker.transitions", "{transition}", "Circuit state changes."
        )
        self.cache = meter.create_counter(
            "resilient_http.cache.requests", "{request}", "Cache lookups by result."
        )
        self.retries = meter.create_counter(
            "resilient_http.retry.attempts", "{attempt}", "Attempts made by Retry layers."
        )
        self.hedges = meter.create_counter(
            "resilient_http.hedge.attempts", "{attempt}", "Hedged attempts by result."
        )
        # The last state seen per circuit (its server, or its layer in decorator mode).
        self.states: dict[tuple[tuple[str, Any], ...], int] = {}
        meter.create_observable_gauge(
            "resilient_http.breaker.state",
            [self._observe_states],
            "{state}",
            "Circuit state: 0 closed, 1 half-open, 2 open, 3 isolated.",
        )

    def _observe_states(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, dict(k)) for k, v in list(self.states.items())]

    def on_event(self, event: Event) -> None:
        """Turn one layer event into metric points."""
        name = event.name
        detail = event.detail
        if name == "retry.attempt":
            self.retries.add(1, metric_attrs(event))
        elif name == "ratelimit.acquired":
            self.ratelimit.add(1, {**metric_attrs(event), "result": "acquired"})
        elif name == "ratelimit.waited":
            attrs = metric_attrs(event)
            self.ratelimit.add(1, {**attrs, "result": "acquired"})
            self.queued.add(1, attrs)
            seconds = detail.get("seconds")
            if type(seconds) in (int, float):
                self.wait_duration.record(seconds, attrs)
        elif name == "ratelimit.rejected":
            self.ratelimit.add(1, {**metric_attrs(event), "result": "rejected"})
        elif name in _CACHE:
            self.cache.add(1, {**metric_attrs(event), "result": _CACHE[name]})
        elif name in _HEDGE:
            self.hedges.add(1, {**metric_attrs(event), "result": _HEDGE[name]})
        elif name in _STATES:
            state, code = _STATES[name]
            attrs = metric_attrs(event)
            attrs.pop("http.request.method", None)
            self.states[tuple(sorted(attrs.items()))] = code
            self.transitions.add(1, {**attrs, "resilient_http.breaker.state": state})
