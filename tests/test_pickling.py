"""Pickling and copying: every layer and config object survives ``pickle``, ``copy.copy`` and
``copy.deepcopy``; a layer's copy has its configuration and none of its state (no cache
entries, circuits, buckets or calls in flight), used or not."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import resilient_http as rh
from resilient_http import presets
from resilient_http.testing import MockServer, Reply


def by_host(request: Any) -> str:
    """A module-level key function: picklable by reference."""
    return str(request.url.host)


def log_event(event: rh.Event) -> None:
    """A module-level hook."""


COPIES: dict[str, Callable[[Any], Any]] = {
    "pickle": lambda obj: pickle.loads(pickle.dumps(obj)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}

OBJECTS: dict[str, Callable[[], Any]] = {
    "Timeout": lambda: rh.Timeout(3, stream=True),
    "FieldMask": lambda: rh.FieldMask(["id", "items(name)"], on_event=log_event),
    "FieldMask(jsonapi)": lambda: rh.FieldMask({"articles": ["title"]}, style="jsonapi"),
    "Cache": lambda: rh.Cache(30, maxsize=7, stale_if_error=5),
    "Retry": lambda: rh.Retry(2, statuses={409}, exceptions=(KeyError,), methods=["GET"]),
    "Retry(budget)": lambda: rh.Retry(budget=rh.RetryBudget(0.5)),
    "CircuitBreaker": lambda: rh.CircuitBreaker(0.25, min_throughput=3),
    "CircuitBreaker(key=fn)": lambda: rh.CircuitBreaker(key=by_host),
    "CircuitBreaker(key=str)": lambda: rh.CircuitBreaker(key="payments"),
    "RateLimit": lambda: rh.RateLimit(5, max_concurrency=2, key=by_host),
    "Hedge": lambda: rh.Hedge(0.05, max_hedges=2),
    "Hedge(p90)": lambda: rh.Hedge("p90", budget=rh.RetryBudget(0.1)),
    "Stack": lambda: rh.Stack(rh.Timeout(9), rh.Retry(), rh.RateLimit(3)),
    "standard": lambda: rh.standard(fields=["id"], cache=60, rate=10),
    "Backoff": lambda: rh.Backoff(0.5, cap=4, jitter="equal"),
    "RetryBudget": lambda: rh.RetryBudget(0.3, slots=5),
    "Verdict": lambda: rh.Verdict(rh.Outcome.TRANSIENT, 2.0, "status 503"),
    "priority": lambda: rh.priority("background"),
    "LinkHeader": lambda: rh.LinkHeader(page_size=5),
    "BodyLink": lambda: rh.BodyLink("links.next"),
    "Cursor": lambda: rh.Cursor(item_field="id", has_more="has_more"),
    "PageToken": lambda: rh.PageToken(page_size=9),
    "Offset": lambda: rh.Offset(total="count"),
    "PageNumber": lambda: rh.PageNumber(total_pages="pages"),
    "JobSpec": lambda: rh.JobSpec(status="state", done={"ok"}, name="export"),
    **{
        f"presets.{name}": (
            (lambda value=value: value) if isinstance(value := getattr(presets, name), rh.JobSpec)
            else (lambda value=value: value())
        )
        for name in presets.__all__
    },
}


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("name", list(OBJECTS))
def test_every_layer_and_config_object_copies_with_its_configuration(
    name: str, how: str
) -> None:
    original = OBJECTS[name]()
    copied = COPIES[how](original)
    assert type(copied) is type(original)
    if isinstance(original, rh.JobSpec):  # its repr shows a set, in no fixed order
        assert (copied.status, copied.done, copied.name) == (
            original.status, original.done, original.name
        )
    else:
        assert repr(copied) == repr(original)


@pytest.mark.parametrize("how", list(COPIES))
async def test_a_copied_layer_works_like_the_original(how: str, mock_server: MockServer) -> None:
    mask = COPIES[how](rh.FieldMask(["id"]))
    stack = COPIES[how](rh.Stack(rh.Retry(attempts=2), rh.CircuitBreaker(), rh.RateLimit(50)))
    mock_server.script("/x", 503, 200)
    async with (
        aiohttp.ClientSession(middlewares=(mask, stack)) as session,
        session.get(mock_server.url("/x")) as resp,
    ):
        assert resp.status == 200
    assert [r.query.get("fields") for r in mock_server.requests_for("/x")] == ["id", "id"]


@pytest.mark.parametrize("how", list(COPIES))
async def test_a_used_layer_copies_without_its_state(how: str, mock_server: MockServer) -> None:
    cache = rh.Cache(60)
    breaker = rh.CircuitBreaker(min_throughput=1)
    limit = rh.RateLimit(100)
    mock_server.script("/c", Reply(200, body=b"cached", headers={"Cache-Control": "max-age=60"}))
    async with aiohttp.ClientSession(middlewares=(cache, breaker, limit)) as session:
        for _ in range(2):
            async with session.get(mock_server.url("/c")) as resp:
                assert await resp.read() == b"cached"
        async with session.get(mock_server.url("/status/500")) as resp:
            assert resp.status == 500
    assert len(mock_server.requests_for("/c")) == 1  # the second was a hit
    assert breaker.state(mock_server.url("/")) is rh.CircuitState.OPEN
    breaker.isolate("api.example.com")

    cache2, breaker2, limit2 = (COPIES[how](layer) for layer in (cache, breaker, limit))
    assert breaker2.states() == {}  # no circuit, none isolated
    assert breaker2.state("api.example.com") is rh.CircuitState.CLOSED
    async with (
        aiohttp.ClientSession(middlewares=(cache2, breaker2, limit2)) as session,
        session.get(mock_server.url("/c")) as resp,
    ):
        assert await resp.read() == b"cached"
    assert len(mock_server.requests_for("/c")) == 2  # the copy's cache was empty


def test_the_copies_of_a_shared_budget_are_shared_too() -> None:
    budget = rh.RetryBudget()
    a, b = pickle.loads(pickle.dumps((rh.Retry(budget=budget), rh.Retry(budget=budget))))
    assert a.budget is b.budget and a.budget is not budget


def test_job_presets_read_the_same_after_a_round_trip() -> None:
    body = {"done": True, "metadata": {"state": "RUNNING"}}
    spec = pickle.loads(pickle.dumps(presets.google_operation))
    assert spec._status(body) == "done" and spec._done(body) is True
    batch = pickle.loads(pickle.dumps(presets.openai_batch))
    assert batch._done({"status": "completed"}) is True
