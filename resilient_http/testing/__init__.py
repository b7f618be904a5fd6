"""Test kit: a fake clock and a real scripted HTTP server on loopback.

``FakeClock`` drives every layer's time; ``MockServer`` is a real ``aiohttp.web`` server on
127.0.0.1 that plays scripted statuses, delays, headers, resets and rate limits and records
every request it receives; ``MockServerProcess`` runs one in a child process.

The server names are imported lazily, so that ``python -m resilient_http.testing.server``
runs without runpy's "found in sys.modules" warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resilient_http.testing.clock import FakeClock

if TYPE_CHECKING:
    from resilient_http.testing.process import MockServerProcess
    from resilient_http.testing.server import MockServer, RecordedRequest, Reply

__all__ = ["FakeClock", "MockServer", "RecordedRequest", "Reply", "MockServerProcess"]

_LAZY = {
    "MockServer": "resilient_http.testing.server",
    "RecordedRequest": "resilient_http.testing.server",
    "Reply": "resilient_http.testing.server",
    "MockServerProcess": "resilient_http.testing.process",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
