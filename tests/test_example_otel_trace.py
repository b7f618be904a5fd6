"""The examples run as written and print what their docstrings promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_otel_trace_prints_the_span_tree_of_a_rate_limited_twice_retried_call() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "otel_trace.py")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "status 200 [1, 2, 3]"
    assert lines[1:14] == [
        "fetch items [INTERNAL]",
        "  * retry.attempt (Retry)",
        "  * ratelimit.acquired (RateLimit)",
        "  GET [CLIENT] http.response.status_code=503 error.type=503",
        "  * retry.scheduled (Retry)",
        "  * retry.attempt (Retry)",
        "  * ratelimit.waited (RateLimit)",
        "  GET [CLIENT] http.request.resend_count=1 http.response.status_code=503 error.type=503",
        "  * retry.scheduled (Retry)",
        "  * retry.attempt (Retry)",
        "  * ratelimit.waited (RateLimit)",
        "  GET [CLIENT] http.request.resend_count=2 http.response.status_code=200",
        "metrics: resilient_http.attempt.duration, resilient_http.call.duration, "
        "resilient_http.ratelimit.queued, resilient_http.ratelimit.requests, "
        "resilient_http.ratelimit.wait.duration, resilient_http.retry.attempts",
    ]
