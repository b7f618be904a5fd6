"""Low-cardinality attributes from events and requests, by the OpenTelemetry conventions.

The attribute names of the stable HTTP semantic conventions are written here (no dependency on
the 0.x ``opentelemetry-semantic-conventions`` package). Nothing here ever carries a URL, a
header or a free-text detail: only a host, a method, a status or an exception class name, and
a few numeric event details.
"""

from __future__ import annotations

from typing import Any, Final

from yarl import URL

from resilient_http.events import Event

METHOD: Final = "http.request.method"
STATUS: Final = "http.response.status_code"
RESEND: Final = "http.request.resend_count"
ERROR_TYPE: Final = "error.type"
SERVER: Final = "server.address"
PORT: Final = "server.port"
URL_FULL: Final = "url.full"
LAYER: Final = "resilient_http.layer"
EVENT_NAME: Final = "event.name"

_KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
# Numeric event details worth keeping on a span event (seconds, counts).
_NUMBERS: Final = ("attempt", "attempts", "delay", "wait", "bound", "seconds", "retry_in")


def method(value: str | None) -> str:
    """The conventions' ``http.request.method``: a known method, else ``_OTHER``."""
    return value if value in _KNOWN_METHODS else "_OTHER"


def host_of(url: str | None) -> str | None:
    """The host of an event's (already redacted) URL; ``None`` for a decorated function."""
    if not url or "://" not in url:
        return None
    try:
        return URL(url).host
    except ValueError:
        return None


def error_type(detail: Any) -> str | None:
    """An event's ``error.type``: a status code or an exception class name, if it has one."""
    for key in ("cause", "last", "reason", "status"):
        value = detail.get(key)
        if value is None:
            continue
        text = str(value)
        if text.startswith("status "):
            text = text[7:]
        if text.isdigit() or text.isidentifier():
            return text
    return None


def metric_attrs(event: Event) -> dict[str, Any]:
    """The attributes every metric point from an event carries."""
    attrs: dict[str, Any] = {LAYER: event.layer}
    host = host_of(event.url)
    if host is not None:
        attrs[SERVER] = host
    if event.method is not None:
        attrs[METHOD] = method(event.method)
    return attrs


def event_attrs(event: Event) -> dict[str, Any]:
    """The attributes of an event's span event."""
    attrs = metric_attrs(event)
    attrs[EVENT_NAME] = event.name
    err = error_type(event.detail)
    if err is not None:
        attrs[ERROR_TYPE] = err
    detail = event.detail
    for key in _NUMBERS:
        value = detail.get(key)
        if type(value) in (int, float):
            attrs[f"resilient_http.{key}"] = value
    return attrs
