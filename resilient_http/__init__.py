"""resilient_http: composable resilience layers as native aiohttp client middlewares.

Three ways in — the same layer objects work in each::

    import aiohttp, resilient_http as rh

    session = aiohttp.ClientSession(middlewares=rh.standard())     # 1. session middlewares
    api = rh.wrap(existing_session, rh.Timeout(10))                # 2. around a session you have

    @rh.resilient(rh.Timeout(5))                                   # 3. a decorator
    async def fetch_user(session, user_id): ...
"""

from typing import TYPE_CHECKING, Any

from resilient_http import credentials, presets
from resilient_http._clock import LOOP_CLOCK, Clock
from resilient_http._middleware import Layer, Stack, Wrapped, resilient, wrap
from resilient_http._standard import standard
from resilient_http.backoff import Backoff
from resilient_http.breaker import CircuitBreaker, CircuitState
from resilient_http.cache import Cache
from resilient_http.classify import Outcome, Verdict, classify
from resilient_http.errors import (
    BodyNotReplayable,
    CircuitOpen,
    DeadlineExceeded,
    PaginationError,
    RateLimitExceeded,
    ResilienceError,
    RetriesExhausted,
    StoreUnavailable,
)
from resilient_http.events import Event, EventHook
from resilient_http.fieldmask import FieldMask
from resilient_http.pagination import Paginator, paginate
from resilient_http.polling import JobSpec, Poller, PollUpdate, poll, poll_updates
from resilient_http.ratelimit import RateLimit, priority
from resilient_http.retry import Retry, RetryBudget
from resilient_http.strategies import (
    BodyLink,
    Cursor,
    LinkHeader,
    Offset,
    Page,
    PageNumber,
    PageToken,
)
from resilient_http.timeout import Timeout, current_deadline

if TYPE_CHECKING:
    from resilient_http.redis import RedisStore

__version__ = "0.1.0"

__all__ = [
    # layers
    "Timeout",
    "FieldMask",
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
    # time and deadlines
    "Clock",
    "LOOP_CLOCK",
    "current_deadline",
    # shared state (the [redis] extra, imported on first use)
    "RedisStore",
    # events and credentials
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
]


def __getattr__(name: str) -> Any:
    # RedisStore is loaded on first use: importing resilient_http never imports redis.
    if name == "RedisStore":
        from resilient_http.redis import RedisStore

        globals()["RedisStore"] = RedisStore
        return RedisStore
    raise AttributeError(f"module 'resilient_http' has no attribute {name!r}")
