"""Trace a call that was rate-limited, retried twice and succeeded, with OpenTelemetry.

Runs the real OpenTelemetry SDK with an in-memory exporter against a local MockServer and
prints the span tree: the call's span with the layers' events on it, and one CLIENT span per
request on the wire. Needs ``pip install 'resilient-http[otel]' opentelemetry-sdk``::

    python examples/otel_trace.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import resilient_http as rh
from resilient_http import otel
from resilient_http.testing import MockServer, Reply

SHOWN = ("http.request.resend_count", "http.response.status_code", "error.type")


def tree(spans: list[ReadableSpan], parent: ReadableSpan, depth: int = 0) -> list[str]:
    """The lines of ``parent``'s subtree: its events and child spans in time order."""
    pad = "  " * depth
    kind = parent.kind.name
    attrs = parent.attributes or {}
    extra = " ".join(f"{k}={attrs[k]!s}" for k in SHOWN if k in attrs)
    lines = [f"{pad}{parent.name} [{kind}] {extra}".rstrip()]
    items: list[tuple[int, Any]] = [(e.timestamp, e) for e in parent.events]
    items += [
        (s.start_time or 0, s)
        for s in spans
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    for _, item in sorted(items, key=lambda pair: pair[0]):
        if isinstance(item, ReadableSpan):
            lines += tree(spans, item, depth + 1)
        else:
            layer = (item.attributes or {}).get("resilient_http.layer")
            lines.append(f"{pad}  * {item.name} ({layer})")
    return lines


async def main() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel.instrument(
        trace_attempts=True, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    tracer = tracer_provider.get_tracer("example")

    async with MockServer() as server:
        # Two 503s asking to retry at once, then the answer.
        retry_now = Reply(503, headers={"Retry-After": "0"})
        server.script("/items", retry_now, retry_now, Reply(200, json=[1, 2, 3]))
        # 10 requests/second, no burst: each retry waits ~0.1 s for a token.
        stack = rh.Stack(rh.Retry(attempts=3), rh.RateLimit(10, burst=1))
        async with aiohttp.ClientSession(middlewares=(stack,)) as session:
            with tracer.start_as_current_span("fetch items"):
                async with session.get(server.url("/items")) as resp:
                    print("status", resp.status, await resp.json())
    otel.uninstrument()

    spans = list(exporter.get_finished_spans())
    (root,) = [s for s in spans if s.parent is None]
    print("\n".join(tree(spans, root)))
    data = reader.get_metrics_data()
    names = sorted(
        {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        if data is not None
        else set()
    )
    print("metrics:", ", ".join(names))


if __name__ == "__main__":
    asyncio.run(main())
