"""Events: hooks, logging, and redaction of credentials."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

import resilient_http as rh
from resilient_http.events import (
    DEBUG_LOG,
    REDACTED,
    Emitter,
    Event,
    logger,
    redact_headers,
    redact_url,
)
from resilient_http.testing import FakeClock


def test_redact_url_hides_credentials_in_userinfo_and_query() -> None:
    shown = redact_url(URL("https://user:pw@api.example/v1?api_key=s3cret&q=cats&access_token=t"))
    assert "s3cret" not in shown and "pw" not in shown and "=t" not in shown
    assert "q=cats" in shown
    assert shown.startswith("https://REDACTED:REDACTED@api.example/v1?")


@pytest.mark.parametrize(
    "text",
    ["http://[::1", "http://a:b:c@", "http://h:99999999/", "://", "", "?", "#", "@@@",
     "http://%zz@h/?%zz=%zz", "\ud800://\udfff@h?token=\ud800", "http://h/?=&&;;=="],
)
def test_redact_url_never_raises_on_invalid_urls(text: str) -> None:
    assert isinstance(redact_url(text), str)


def test_redact_url_never_raises_on_odd_objects_and_huge_input() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert redact_url(Hostile()) == REDACTED  # type: ignore[arg-type]
    assert redact_url(None) == "None"  # type: ignore[arg-type]
    huge = "https://u:" + "p" * 1_000_000 + "@h/" + "a" * 1_000_000 + "?token=" + "t" * 10**6
    shown = redact_url(huge)
    assert "ppp" not in shown and "ttt" not in shown and shown.endswith(f"?token={REDACTED}")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_redact_url_never_raises_on_any_text(text: str) -> None:
    assert isinstance(redact_url(text), str)


def test_redact_url_follows_the_opentelemetry_rules() -> None:
    url = ("https://user:pw@h/x?AWSAccessKeyId=AKIA&X-Goog-Signature=g&sig=s&q=1"
           "#access_token=frag")
    assert redact_url(URL(url)) == redact_url(url) == (
        f"https://REDACTED:REDACTED@h/x?AWSAccessKeyId={REDACTED}&X-Goog-Signature={REDACTED}"
        f"&sig={REDACTED}&q=1"
    )
    assert redact_url("https://h/x?q=1;token=t") == f"https://h/x?q=1;token={REDACTED}"
    assert redact_url("https://h/x?api%5Fkey=k") == f"https://h/x?api%5Fkey={REDACTED}"


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
    names = ["Authorization", "Cookie", "X-Api-Key", "PRIVATE-TOKEN", "X-Goog-Api-Key"]
    shown = redact_headers({name: "s3cret" for name in names})
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


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (logger.level, logger.disabled, root.level, logging.root.manager.disable)
    yield
    logger.disabled = saved[1]
    logging.disable(saved[3])
    root.setLevel(saved[2])
    logger.setLevel(saved[0])


@pytest.mark.usefixtures("restore_logging")
def test_debug_log_follows_every_level_change() -> None:
    root = logging.getLogger()
    logger.setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)
    assert DEBUG_LOG.on is False is logger.isEnabledFor(logging.DEBUG)
    root.setLevel(logging.DEBUG)  # inherited from the root
    assert DEBUG_LOG.on is True is logger.isEnabledFor(logging.DEBUG)
    logger.setLevel(logging.INFO)  # its own level wins
    assert DEBUG_LOG.on is False
    logger.setLevel(logging.DEBUG)
    assert DEBUG_LOG.on is True
    logging.disable(logging.DEBUG)
    assert DEBUG_LOG.on is False is logger.isEnabledFor(logging.DEBUG)
    logging.disable(logging.NOTSET)
    assert DEBUG_LOG.on is True
    for level, on in [("INFO", False), ("DEBUG", True)]:  # incremental: pytest's handlers stay
        logging.config.dictConfig(
            {"version": 1, "incremental": True, "loggers": {"resilient_http": {"level": level}}}
        )
        assert DEBUG_LOG.on is on is logger.isEnabledFor(logging.DEBUG)


@pytest.mark.usefixtures("restore_logging")
def test_a_disabled_logger_reads_as_on_and_the_emit_drops_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``dictConfig`` sets a level while a logger is disabled, then enables it without
    logging's cache hook: the flag must not read off then, so it ignores ``disabled``."""
    logger.disabled = True
    with caplog.at_level(logging.DEBUG, logger="resilient_http"):  # the hook runs now
        assert DEBUG_LOG.on
        Emitter("X", None).emit("x.dropped", None, None)
        logger.disabled = False  # no hook runs
        assert DEBUG_LOG.on
        Emitter("X", None).emit("x.logged", None, None)
    assert "x.dropped" not in caplog.text and "x.logged" in caplog.text
