"""The stored form of a cache entry in Redis: a versioned binary format (never pickle).

Layout (little-endian, :mod:`struct`)::

    b"rhC"  version:u8  flags:u8  status:u16
    request_time response_time initial_age lifetime fresh_until
    stale_if_error stale_while_revalidate          (7 x f64)
    size:u64  headers:u32  vary:u32
    then length-prefixed texts (u32 length, 0xFFFFFFFF = None), in order:
    method, reason, etag, last_modified, owner,
    each header's name and value, each Vary field's name and value (value may be None),
    and last the body (u32 length, raw bytes).

``flags``: bit 0 ``no_cache``, bit 1 ``must_revalidate``. Texts are UTF-8 with
``surrogateescape``, so header fields keep their exact raw bytes (aiohttp decodes them the
same way). The three points in time (``request_time``, ``response_time``, ``fresh_until``)
are stored as wall-clock epoch seconds: the caller passes ``offset`` = wall clock minus its
own clock, added on the way in and taken off on the way out.

:func:`decode` takes hostile input: anything it cannot read whole (another version, a
truncated or padded value, a count larger than the bytes left, a time that is not finite)
is ``None``, which the store treats as a miss. It never raises.
"""

from __future__ import annotations

import hashlib
import math
import struct

from resilient_http._cache_model import Entry

__all__ = ["MAGIC", "VERSION", "encode", "decode", "variant_field"]

MAGIC = b"rhC"
VERSION = 1
_HEAD = struct.Struct("<3sBBH7dQII")
_LEN = struct.Struct("<I")
_NONE = 0xFFFFFFFF
_NO_CACHE = 1
_MUST_REVALIDATE = 2


def _text(value: str | None, out: list[bytes]) -> None:
    if value is None:
        out.append(_LEN.pack(_NONE))
        return
    raw = value.encode("utf-8", "surrogateescape")
    out.append(_LEN.pack(len(raw)))
    out.append(raw)


def encode(entry: Entry, offset: float) -> bytes | None:
    """``entry`` as bytes, its times moved onto the wall clock by ``offset`` seconds; ``None``
    when a text cannot be stored exactly (a lone surrogate no wire bytes decode to)."""
    flags = (_NO_CACHE if entry.no_cache else 0) | (
        _MUST_REVALIDATE if entry.must_revalidate else 0
    )
    out = [
        _HEAD.pack(
            MAGIC, VERSION, flags, entry.status,
            entry.request_time + offset, entry.response_time + offset, entry.initial_age,
            entry.lifetime, entry.fresh_until + offset, entry.stale_if_error,
            entry.stale_while_revalidate, entry.size, len(entry.headers), len(entry.vary),
        )
    ]
    try:
        for text in (entry.method, entry.reason, entry.etag, entry.last_modified, entry.owner):
            _text(text, out)
        for name, value in entry.headers:
            _text(name, out)
            _text(value, out)
        for name, maybe in entry.vary:
            _text(name, out)
            _text(maybe, out)
    except UnicodeEncodeError:
        return None
    out.append(_LEN.pack(len(entry.body)))
    out.append(entry.body)
    return b"".join(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = _HEAD.size

    def length(self) -> int:
        (n,) = _LEN.unpack_from(self.data, self.pos)  # struct.error past the end
        self.pos += 4
        return int(n)

    def raw(self) -> bytes:
        n = self.length()
        end = self.pos + n
        if n == _NONE or end > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def text(self) -> str | None:
        n = self.length()
        if n == _NONE:
            return None
        end = self.pos + n
        if end > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk.decode("utf-8", "surrogateescape")

    def required(self) -> str:
        value = self.text()
        if value is None:
            raise ValueError("missing text")
        return value


def decode(data: bytes, offset: float) -> Entry | None:
    """The entry ``data`` holds, its times moved back off the wall clock by ``offset``
    seconds, or ``None`` for anything that is not a whole entry of this version."""
    try:
        return _decode(data, offset)
    except (struct.error, ValueError, TypeError, OverflowError):
        return None


def _decode(data: bytes, offset: float) -> Entry | None:
    (magic, version, flags, status, request_time, response_time, initial_age, lifetime,
     fresh_until, stale_if_error, stale_while_revalidate, size, n_headers,
     n_vary) = _HEAD.unpack_from(data, 0)
    times = (request_time, response_time, initial_age, lifetime, fresh_until, stale_if_error,
             stale_while_revalidate)
    if (
        magic != MAGIC or version != VERSION or flags > 3 or not 100 <= status <= 999
        or not all(map(math.isfinite, times))
        or min(initial_age, lifetime, stale_if_error, stale_while_revalidate) < 0
        # every header takes 8 bytes at least, every Vary field 8: no huge loops
        or 8 * (n_headers + n_vary) > len(data)
    ):
        return None
    r = _Reader(data)
    method = r.required()
    reason = r.required()
    etag, last_modified, owner = r.text(), r.text(), r.text()
    headers = tuple((r.required(), r.required()) for _ in range(n_headers))
    vary = tuple((r.required(), r.text()) for _ in range(n_vary))
    body = r.raw()
    if r.pos != len(data) or not method or size < len(body):
        return None
    return Entry(
        method=method, status=status, reason=reason, headers=headers, body=body, vary=vary,
        request_time=request_time - offset, response_time=response_time - offset,
        initial_age=initial_age, lifetime=lifetime, fresh_until=fresh_until - offset,
        no_cache=bool(flags & _NO_CACHE), must_revalidate=bool(flags & _MUST_REVALIDATE),
        etag=etag, last_modified=last_modified, stale_if_error=stale_if_error,
        stale_while_revalidate=stale_while_revalidate, size=size, owner=owner,
    )


def variant_field(entry: Entry) -> bytes:
    """The hash field of ``entry``'s variant (its method, owner and ``Vary`` values): a
    16-byte digest, the same for every response that replaces it."""
    parts = [f"{len(entry.method)}:{entry.method}", "-" if entry.owner is None else
             f"{len(entry.owner)}:{entry.owner}"]
    for name, value in entry.vary:
        parts.append(f"{len(name)}:{name.lower()}")
        parts.append("-" if value is None else f"{len(value)}:{value}")
    raw = "".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).digest()
