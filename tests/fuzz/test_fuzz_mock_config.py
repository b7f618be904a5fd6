"""Fuzz of the MockServer's JSON configuration (``MockServer.configure`` and the
``/__control/`` endpoint read user text): every bad document is a ``TypeError`` or
``ValueError`` naming the entry, never another exception."""

from __future__ import annotations

from typing import Any

from _gen import json_values
from _loop import LoopRunner
from _profiles import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from resilient_http.testing import MockServer

small = json_values(6)
replies = st.one_of(
    st.integers(-1, 700),
    st.fixed_dictionaries({}, optional={
        "status": st.integers(100, 600) | small, "body": st.text(max_size=5) | small,
        "json": small, "delay": st.floats(-1, 0.01) | small, "truncate": st.booleans() | small,
        "reset": st.booleans() | small, "drip": st.lists(small, max_size=3) | small,
        "headers": st.dictionaries(st.text(max_size=5), st.text(max_size=5)) | small,
    }),
    small,
)
options = st.dictionaries(
    st.sampled_from(["rate", "per", "burst", "retry_after", "failures", "status", "headers",
                     "success", "error_ratio", "reset_ratio", "truncate_ratio", "latency",
                     "seed", "slow_ratio", "slow_body", "body", "etag", "last_modified",
                     "cache_control", "vary", "expires", "extra_headers", "start", "end",
                     "delay", "bogus"]),
    st.one_of(small, replies, st.floats(-1, 10), st.lists(st.floats(0, 0.01), max_size=3)),
    max_size=4,
)
routes = st.fixed_dictionaries(
    {"path": st.one_of(st.sampled_from(["/a", "/b/c", ""]), small)},
    optional={
        "method": st.one_of(st.sampled_from(["GET", "post", ""]), small),
        "repeat_last": st.booleans() | small,
        "script": st.lists(replies, max_size=3) | small,
        "fail_then_succeed": options, "random_faults": options, "cacheable": options,
        "rate_limited": options, "set_rate": options, "outage": options, "bogus": small,
    },
)
documents = st.one_of(
    small,
    st.fixed_dictionaries({}, optional={
        "reset": small, "record": st.booleans() | small,
        "routes": st.lists(routes | small, max_size=3) | small, "bogus": small,
    }),
)


def test_configure_raises_only_type_or_value_errors() -> None:
    runner = LoopRunner()
    server = MockServer()

    async def configure(document: Any) -> None:
        try:
            server.configure(document)
        except (TypeError, ValueError) as exc:
            assert str(exc)

    @FUZZ
    @given(documents)
    def example(document: Any) -> None:
        runner.run(configure(document))

    try:
        example()
    finally:
        runner.close()
