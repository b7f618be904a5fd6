"""The exported names are the contract of DESIGN.md §2: this test fails if they drift."""

from __future__ import annotations

import inspect

import resilient_http as rh
import resilient_http.testing as rht

# Every public name, grouped as in DESIGN.md. A name is added here when its layer lands.
DOCUMENTED = {
    # layers
    "Timeout",
    "FieldMask",
    # pagination
    "paginate",
    "Paginator",
    "Page",
    "LinkHeader",
    "BodyLink",
    "Cursor",
    "PageToken",
    "Offset",
    "PageNumber",
    "presets",
    # long-running jobs
    "poll",
    "poll_updates",
    "Poller",
    "PollUpdate",
    "JobSpec",
    "Cache",
    "Retry",
    "CircuitBreaker",
    "CircuitState",
    "RateLimit",
    "priority",
    # retry helpers
    "Backoff",
    "RetryBudget",
    "classify",
    "Outcome",
    "Verdict",
    # composition
    "Layer",
    "Stack",
    "Wrapped",
    "standard",
    "wrap",
    "resilient",
    # time and deadlines
    "Clock",
    "LOOP_CLOCK",
    "current_deadline",
    # shared state
    "RedisStore",
    # events
    "Event",
    "EventHook",
    "credentials",
    # errors
    "ResilienceError",
    "DeadlineExceeded",
    "RetriesExhausted",
    "RateLimitExceeded",
    "CircuitOpen",
    "BodyNotReplayable",
    "PaginationError",
    "StoreUnavailable",
}


def test_all_matches_documented_names() -> None:
    assert set(rh.__all__) == DOCUMENTED
    assert len(rh.__all__) == len(set(rh.__all__)), "duplicates in __all__"


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in rh.__all__:
        obj = getattr(rh, name)
        own = getattr(obj, "__module__", "").startswith("resilient_http")
        if own and (inspect.isclass(obj) or inspect.isfunction(obj)):
            assert obj.__doc__, f"{name} has no docstring"


def test_testing_kit_names() -> None:
    assert {"FakeClock", "MockServer", "Reply", "RecordedRequest"} <= set(rht.__all__)
    for name in rht.__all__:
        assert getattr(rht, name).__doc__, f"testing.{name} has no docstring"
