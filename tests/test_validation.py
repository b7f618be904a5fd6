"""Every public constructor refuses every bad value with a ValueError or TypeError that names
the parameter: hypothesis draws hostile values (huge ints, inf/nan, bools, str, bytes, None,
nested lists, objects) for each parameter of each constructor, then the regressions the
adversarial review found, one by one."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resilient_http as rh
from resilient_http import presets


class Session:
    """Enough of a session for the constructors of paginate() and poll_updates(), which
    only check that ``request`` is callable: nothing is ever sent through it here."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a constructor must not send anything")


URL = "https://api.example.com/items"

# name -> (constructor, the arguments it needs besides the one under test)
CONSTRUCTORS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "Timeout": (rh.Timeout, {"seconds": 1}),
    "FieldMask": (rh.FieldMask, {"fields": ["id"]}),
    "Cache": (rh.Cache, {}),
    "Retry": (rh.Retry, {}),
    "CircuitBreaker": (rh.CircuitBreaker, {}),
    "RateLimit": (rh.RateLimit, {"rate": 1}),
    "Hedge": (rh.Hedge, {}),
    "RedisStore": (rh.RedisStore, {"url_or_client": "redis://127.0.0.1:1/0"}),
    "priority": (rh.priority, {"level": "urgent"}),
    "Backoff": (rh.Backoff, {}),
    "RetryBudget": (rh.RetryBudget, {}),
    "Verdict": (rh.Verdict, {"outcome": rh.Outcome.TRANSIENT}),
    "standard": (rh.standard, {}),
    "paginate": (rh.paginate, {"session": Session(), "url": URL, "strategy": rh.LinkHeader()}),
    "LinkHeader": (rh.LinkHeader, {}),
    "BodyLink": (rh.BodyLink, {}),
    "Cursor": (rh.Cursor, {}),
    "PageToken": (rh.PageToken, {}),
    "Offset": (rh.Offset, {}),
    "PageNumber": (rh.PageNumber, {}),
    "poll_updates": (
        rh.poll_updates, {"session": Session(), "url": URL, "job": presets.openai_batch}
    ),
    "JobSpec": (rh.JobSpec, {"status": "status", "done": {"ok"}}),
    **{
        f"presets.{name}": (getattr(presets, name), {})
        for name in presets.__all__
        if not isinstance(getattr(presets, name), rh.JobSpec)
    },
}

# Public names that take no configuration of their own (or are covered through another).
NO_CONFIG = {
    "CircuitState", "Outcome", "classify", "Layer", "Wrapped", "Paginator", "Page",
    "Poller", "PollUpdate", "Clock", "LOOP_CLOCK", "current_deadline", "Event", "EventHook",
    "presets", "credentials", "info", "ResponseInfo", "CacheStats", "Attempt", "OrderWarning",
    "poll",  # poll() is poll_updates() awaited: the same checks
    "Stack", "wrap", "resilient",  # layers only: tested below
    "ResilienceError", "DeadlineExceeded", "RetriesExhausted", "RateLimitExceeded",
    "CircuitOpen", "BodyNotReplayable", "PaginationError", "StoreUnavailable",
}

PARAMS = [
    (name, param)
    for name, (ctor, _) in CONSTRUCTORS.items()
    for param, p in inspect.signature(ctor).parameters.items()
    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
]


class Opaque:
    def __repr__(self) -> str:
        raise RuntimeError("a hostile __repr__")


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


hostile = st.one_of(
    st.integers(),
    st.sampled_from([10**309, -(10**309), 10**400, 10**5000, 2**1024, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.binary(max_size=6),
    st.sampled_from(["a(" * 5000 + "b" + ")" * 5000, "GET ", "", "\x00", "x" * 10_000]),
    st.recursive(
        st.integers() | st.text(max_size=3) | st.none(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    ),
    st.integers(1, 100_000).map(nested),
    st.timedeltas(),
    st.builds(object),
    st.builds(Opaque),
)


def check(ctor: Callable[..., Any], kwargs: dict[str, Any], param: str) -> None:
    """Either the value is accepted, or the error is a ValueError/TypeError naming ``param``."""
    try:
        made = ctor(**kwargs)
    except (ValueError, TypeError) as exc:
        assert param in str(exc), f"{param}: {type(exc).__name__}: {exc}"
    else:
        assert made is not None


def test_every_public_name_with_config_is_covered() -> None:
    covered = {name for name in CONSTRUCTORS if "." not in name}
    assert set(rh.__all__) - covered - NO_CONFIG == set()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PARAMS), hostile)
def test_hostile_values_raise_value_or_type_errors_naming_the_parameter(
    case: tuple[str, str], value: Any
) -> None:
    name, param = case
    ctor, base = CONSTRUCTORS[name]
    check(ctor, {**base, param: value}, param)


@pytest.mark.parametrize(("name", "param"), PARAMS)
def test_each_parameter_against_the_worst_values(name: str, param: str) -> None:
    ctor, base = CONSTRUCTORS[name]
    for value in (10**400, -(10**400), 10**5000, math.inf, -math.inf, math.nan, True,
                  b"x", nested(100_000), Opaque(), [1], "GET "):
        check(ctor, {**base, param: value}, param)


@settings(max_examples=100, deadline=None)
@given(hostile)
def test_stack_and_resilient_name_their_layers(value: Any) -> None:
    for ctor in (rh.Stack, rh.resilient):
        with pytest.raises(TypeError, match="layers"):
            ctor(rh.Retry(), value)


async def test_wrap_names_its_session_and_layers() -> None:
    with pytest.raises(TypeError, match="session"):
        rh.wrap(10**5000, rh.Retry())  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        for value in (None, 1, nested(100_000), Opaque()):
            with pytest.raises(TypeError, match="layers"):
                rh.wrap(session, value)


# -- the regressions the review found, one by one ------------------------------------------

DURATIONS = [
    (rh.Timeout, "seconds", {}),
    (rh.Cache, "ttl", {}),
    (rh.Cache, "stale_if_error", {}),
    (rh.Cache, "stale_while_revalidate", {}),
    (rh.Retry, "max_retry_after", {}),
    (rh.CircuitBreaker, "window", {}),
    (rh.CircuitBreaker, "break_for", {}),
    (rh.RateLimit, "rate", {}),
    (rh.RateLimit, "per", {"rate": 1}),
    (rh.RateLimit, "burst", {"rate": 1}),
    (rh.RateLimit, "max_wait", {"rate": 1}),
    (rh.RateLimit, "recovery", {"rate": 1}),
    (rh.RateLimit, "max_pause", {"rate": 1}),
    (rh.Backoff, "base", {}),
    (rh.Backoff, "multiplier", {}),
    (rh.Backoff, "cap", {}),
    (rh.RetryBudget, "min_per_second", {}),
    (rh.RetryBudget, "window", {}),
    (rh.Verdict, "delay", {"outcome": rh.Outcome.TRANSIENT}),
    (rh.standard, "total_timeout", {}),
    (rh.standard, "attempt_timeout", {}),
    (rh.standard, "cache", {}),
    (rh.standard, "rate", {}),
    (rh.poll_updates, "interval", {"session": Session(), "url": URL, "job": presets.openai_batch}),
    (rh.poll_updates, "timeout", {"session": Session(), "url": URL, "job": presets.openai_batch}),
]


@pytest.mark.parametrize(
    ("ctor", "param", "base"), DURATIONS, ids=[f"{c.__name__}-{p}" for c, p, _ in DURATIONS]
)
@pytest.mark.parametrize("huge", [10**309, -(10**309), 10**5000], ids=["1e309", "-1e309", "1e5000"])
def test_an_int_too_large_for_a_float_is_a_value_error_naming_the_parameter(
    ctor: Callable[..., Any], param: str, base: dict[str, Any], huge: int
) -> None:
    with pytest.raises(ValueError, match=param):
        ctor(**{**base, param: huge})


def test_the_named_cases() -> None:
    with pytest.raises(TypeError, match="methods"):
        rh.Retry(methods=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="statuses"):
        rh.Retry(statuses=[[503]])  # type: ignore[list-item]
    for layer in (rh.Retry, rh.Cache, rh.CircuitBreaker, rh.FieldMask, rh.Timeout):
        args = (["id"],) if layer is rh.FieldMask else ()
        if layer is rh.Timeout:
            continue  # Timeout has no hooks
        with pytest.raises(TypeError, match="on_event"):
            layer(*args, on_event=1)
    with pytest.raises(TypeError, match="on_event"):
        rh.RateLimit(1, on_event=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fields.*nested deeper"):
        rh.FieldMask(["a(" * 5000 + "b" + ")" * 5000])
    rh.FieldMask(["a(" * 32 + "b" + ")" * 32])  # 32 levels are fine
    with pytest.raises(TypeError, match="fields"):
        rh.FieldMask(["id", 3])  # type: ignore[list-item]
    for endless in (math.inf, math.nan, timedelta.max * 0 + timedelta(days=-1)):
        with pytest.raises(ValueError, match="delay"):
            rh.Verdict(rh.Outcome.TRANSIENT, endless)  # type: ignore[arg-type]
    for method in ("", "GE T", "G\r\nX: y"):
        with pytest.raises(ValueError, match="method"):
            rh.poll_updates(Session(), URL, rh.presets.openai_batch, method=method)
        with pytest.raises(ValueError, match="method"):
            rh.paginate(Session(), URL, rh.LinkHeader(), method=method)
    with pytest.raises(TypeError, match="method"):
        rh.poll_updates(Session(), URL, rh.presets.openai_batch, method=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params"):
        rh.paginate(Session(), URL, rh.LinkHeader(), params=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="level"):
        rh.priority(["urgent"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slots"):
        rh.RetryBudget(slots=10**30)
