"""Events: hooks, logging, and redaction of credentials."""

from __future__ import annotations

import logging

import pytest
from yarl import URL

import resilient_http as rh
from resilient_http.cache import CREDENTIAL_HEADERS
from resilient_http.events import REDACTED, Emitter, Event, redact_headers, redact_url
from resilient_http.testing import FakeClock


def test_redact_url_hides_credentials_in_userinfo_and_query() -> None:
    shown = redact_url(URL("https://user:pw@api.example/v1?api_key=s3cret&q=cats&access_token=t"))
    assert "s3cret" not in shown and "pw" not in shown and "=t" not in shown
    assert "q=cats" in shown
    assert shown.startswith("https://api.example/v1?")


def test_redact_headers_hides_secrets_and_keeps_the_rest() -> None:
    shown = redact_headers(
        [
            ("Authorization", "Bearer abc"),
            ("Cookie", "sid=1"),
            ("X-Api-Key", "k"),
            ("X-Refresh-Token", "r"),
            ("Accept", "application/json"),
        ]
    )
    assert shown == {
        "Authorization": REDACTED,
        "Cookie": REDACTED,
        "X-Api-Key": REDACTED,
        "X-Refresh-Token": REDACTED,
        "Accept": "application/json",
    }


def test_every_header_the_cache_keys_by_is_redacted() -> None:
    shown = redact_headers({name.title(): "s3cret" for name in CREDENTIAL_HEADERS})
    assert set(shown.values()) == {REDACTED}


def test_emitter_sends_redacted_events_to_hooks_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Event] = []
    emitter = Emitter("Retry", seen.append)
    with caplog.at_level(logging.DEBUG, logger="resilient_http"):
        emitter.emit("retry.scheduled", "GET", URL("https://h/x?token=abc"), delay=1.5)
    url = f"https://h/x?token={REDACTED}"
    assert seen == [Event("retry.scheduled", "Retry", "GET", url, {"delay": 1.5})]
    assert "abc" not in caplog.text and "retry.scheduled" in caplog.text


def test_a_failing_hook_never_breaks_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.ERROR, logger="resilient_http"):
        Emitter("X", [broken]).emit("x.happened", None, None)
    assert "hook bug" in caplog.text


def test_nobody_listening_means_nothing_is_built() -> None:
    emitter = Emitter("X", None)
    assert not emitter.enabled()
    with pytest.raises(TypeError, match="on_event"):
        Emitter("X", [42])  # type: ignore[list-item]


async def test_decorator_mode_events_name_the_function_by_its_qualname() -> None:
    events: list[Event] = []
    clock = FakeClock()

    @rh.resilient(rh.CircuitBreaker(min_throughput=1, clock=clock, on_event=events.append))
    async def broken() -> None:
        raise ConnectionResetError

    @rh.resilient(rh.Cache(ttl=10, clock=clock, on_event=events.append))
    async def cached() -> int:
        return 1

    with pytest.raises(ConnectionResetError):
        await broken()
    assert await cached() == 1
    where = "test_decorator_mode_events_name_the_function_by_its_qualname.<locals>."
    urls = {e.name: e.url for e in events}
    assert urls["breaker.opened"] == where + "broken"  # was module-qualified, unlike the rest
    assert urls["cache.miss"] == urls["cache.stored"] == where + "cached"
