"""Test kit: a fake clock and a real scripted HTTP server on loopback.

``FakeClock`` drives every layer's time; ``MockServer`` is a real ``aiohttp.web`` server on
127.0.0.1 that plays scripted statuses, delays, headers, resets and rate limits and records
every request it receives.
"""

from resilient_http.testing.clock import FakeClock
from resilient_http.testing.server import MockServer, RecordedRequest, Reply

__all__ = ["FakeClock", "MockServer", "RecordedRequest", "Reply"]
