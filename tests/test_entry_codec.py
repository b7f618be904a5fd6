"""The Redis cache's entry format: every field round-trips exactly, and hostile bytes
(random, truncated, padded, flipped, another version) decode to a miss, never an error."""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_http._cache_model import Entry
from resilient_http.redis._entry_codec import MAGIC, decode, encode, variant_field

# Text as aiohttp hands it over: UTF-8, or any bytes decoded with surrogateescape.
wire_text = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")) | st.text(
    max_size=20
).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
times = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
durations = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    body = draw(st.binary(max_size=200))
    return Entry(
        method=draw(st.sampled_from(["GET", "HEAD"])),
        status=draw(st.integers(100, 999)),
        reason=draw(wire_text),
        headers=tuple(draw(st.lists(st.tuples(wire_text, wire_text), max_size=6))),
        body=body,
        vary=tuple(draw(st.lists(st.tuples(wire_text, st.none() | wire_text), max_size=3))),
        request_time=draw(times),
        response_time=draw(times),
        initial_age=draw(durations),
        lifetime=draw(durations),
        fresh_until=draw(times),
        no_cache=draw(st.booleans()),
        must_revalidate=draw(st.booleans()),
        etag=draw(st.none() | wire_text),
        last_modified=draw(st.none() | wire_text),
        stale_if_error=draw(durations),
        stale_while_revalidate=draw(durations),
        size=len(body) + draw(st.integers(0, 10_000)),
        owner=draw(st.none() | st.text("0123456789abcdefcks", max_size=33)),
    )


FIELDS = [
    "method", "status", "reason", "headers", "body", "vary", "initial_age", "lifetime",
    "no_cache", "must_revalidate", "etag", "last_modified", "stale_if_error",
    "stale_while_revalidate", "size", "owner",
]


@given(entries(), st.floats(min_value=-1e9, max_value=2e9, allow_nan=False))
def test_every_field_round_trips(entry: Entry, offset: float) -> None:
    blob = encode(entry, offset)
    assert blob is not None and blob.startswith(MAGIC + b"\x01")
    back = decode(blob, offset)
    assert back is not None
    for name in FIELDS:
        assert getattr(back, name) == getattr(entry, name), name
    for name in ("request_time", "response_time", "fresh_until"):  # via the wall clock
        assert math.isclose(getattr(back, name), getattr(entry, name), abs_tol=1e-6), name
    assert variant_field(back) == variant_field(entry)


def test_header_bytes_are_kept_exactly() -> None:
    raw = b"caf\xe9 \xff\x00 \xe2\x9c\x93"  # latin-1, a stray byte, NUL, UTF-8
    value = raw.decode("utf-8", "surrogateescape")
    entry = _entry(headers=(("X-Raw", value),))
    back = decode(encode(entry, 0.0) or b"", 0.0)
    assert back is not None
    assert back.headers[0][1].encode("utf-8", "surrogateescape") == raw


def test_text_that_no_wire_bytes_decode_to_is_not_stored() -> None:
    assert encode(_entry(headers=(("X", "\ud800"),)), 0.0) is None


def test_times_are_stored_on_the_wall_clock() -> None:
    entry = _entry()
    blob = encode(entry, 1000.0)
    assert blob is not None
    back = decode(blob, 400.0)  # another process, another monotonic clock
    assert back is not None
    assert back.fresh_until == entry.fresh_until + 600.0
    assert back.response_time == entry.response_time + 600.0


@given(st.binary(max_size=300))
def test_random_bytes_are_a_miss(data: bytes) -> None:
    assert decode(data, 0.0) is None


@settings(max_examples=300)
@given(entries(), st.data())
def test_damaged_entries_never_raise(entry: Entry, data: st.DataObject) -> None:
    blob = encode(entry, 0.0)
    assert blob is not None
    cut = data.draw(st.integers(0, len(blob) - 1))
    assert decode(blob[:cut], 0.0) is None  # truncated
    assert decode(blob + b"\x00", 0.0) is None  # padded
    at = data.draw(st.integers(0, len(blob) - 1))
    flipped = blob[:at] + bytes([blob[at] ^ data.draw(st.integers(1, 255))]) + blob[at + 1:]
    back = decode(flipped, 0.0)  # a miss, or some entry: never an exception
    assert back is None or isinstance(back, Entry)


def test_hostile_headers_are_misses() -> None:
    blob = encode(_entry(), 0.0)
    assert blob is not None
    assert decode(MAGIC + b"\x02" + blob[4:], 0.0) is None  # another version
    huge = struct.pack("<I", 2**32 - 2)  # a header count no value can hold
    head = struct.calcsize("<3sBBH7dQ")
    assert decode(blob[:head] + huge + blob[head + 4:], 0.0) is None
    nan = struct.pack("<d", math.nan)
    assert decode(blob[:7] + nan + blob[15:], 0.0) is None  # request_time
    assert decode(blob[:4] + b"\x04" + blob[5:], 0.0) is None  # unknown flag
    assert decode(b"", 0.0) is None


def _entry(**changes: object) -> Entry:
    fields: dict[str, object] = dict(
        method="GET", status=200, reason="OK", headers=(("Content-Type", "text/plain"),),
        body=b"hello", vary=(("Accept", "text/plain"),), request_time=10.0,
        response_time=10.5, initial_age=0.0, lifetime=60.0, fresh_until=70.5, no_cache=False,
        must_revalidate=False, etag='"v1"', last_modified=None, stale_if_error=0.0,
        stale_while_revalidate=0.0, size=200, owner=None,
    )
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]
