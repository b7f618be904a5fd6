"""The one place that builds a real :class:`aiohttp.ClientResponse` from stored bytes.

A cache hit must hand the caller what aiohttp itself would have: a ``ClientResponse`` whose
``read()``, ``json()``, ``text()``, ``content`` iteration, ``headers``, ``status``, ``url``,
``raise_for_status()``, ``release()`` and ``async with`` all work. aiohttp has no public way
to make one, so this module uses the constructor and the attributes that ``start()`` sets,
and nothing else of aiohttp's internals. It supports every aiohttp we declare (>= 3.12):

* 3.12 and 3.13: ``ClientResponse(method, url, *, writer, continue100, timer, request_info,
  traces, loop, session)``;
* 3.14 added a required ``stream_writer`` keyword; with ``writer=None`` ("request already
  sent") the constructor only reads its ``output_size``.

The built response owns no connection and no task: it is "closed" from the start (like a
live response whose body was read to the end), so it never warns about being unclosed, and
releasing it is a no-op apart from closing its ``content`` stream (as aiohttp does).

``Cache`` answers through :func:`entry_response` (a stored entry, with its current ``Age``)
and :func:`not_modified_response` / :func:`status_response` (a 304 or 504 it makes up).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

from aiohttp import ClientRequest, ClientResponse, RequestInfo
from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import TimerNoop
from aiohttp.http import HttpVersion11
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from resilient_http._rfc9111 import Entry

__all__ = [
    "build_response",
    "body_if_read",
    "entry_response",
    "not_modified_response",
    "status_response",
    "NEEDS_STREAM_WRITER",
]

NEEDS_STREAM_WRITER: bool = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters
"""Whether this aiohttp's ``ClientResponse`` takes ``stream_writer`` (3.14 and later)."""


class _SentWriter:
    """Stands in for the request's stream writer: nothing was written, nothing is pending."""

    __slots__ = ()
    output_size = 0


class _NoProtocol:
    """The ``StreamReader``'s flow control target: there is no transport to pause."""

    __slots__ = ()
    _reading_paused = False
    connected = True

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        return None

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        return None


_PROTOCOL = cast(BaseProtocol, _NoProtocol())
_TIMER = TimerNoop()
_NO_TRACES: list[Any] = []  # read() only sends traces when it reads from the network
_EXTRA: dict[str, Any] = {"stream_writer": _SentWriter()} if NEEDS_STREAM_WRITER else {}
_STREAM_LIMIT = 2**16

# What a 304 carries of the stored response (RFC 9110 §15.4.5).
_304_FIELDS = (
    "etag", "date", "cache-control", "expires", "vary", "content-location", "last-modified"
)


def build_response(
    method: str,
    url: URL,
    *,
    status: int,
    reason: str,
    headers: CIMultiDictProxy[str],
    raw_headers: tuple[tuple[bytes, bytes], ...],
    body: bytes,
    request_info: RequestInfo,
    loop: asyncio.AbstractEventLoop,
    session: Any = None,
) -> ClientResponse:
    """A finished ``ClientResponse`` holding ``body``, as if it had just been read.

    ``headers`` may be shared between responses (a ``CIMultiDictProxy`` cannot be changed).
    ``session`` (the ``ClientSession`` or ``None``) supplies the charset fallback of
    ``text()``, as on a live response.
    """
    resp = ClientResponse(
        method,
        url,
        writer=None,
        continue100=None,
        timer=_TIMER,
        request_info=request_info,
        traces=_NO_TRACES,
        loop=loop,
        session=session,
        **_EXTRA,
    )
    resp.version = HttpVersion11
    resp.status = status
    resp.reason = reason
    resp._headers = headers
    resp._raw_headers = raw_headers
    resp._body = body
    content = StreamReader(_PROTOCOL, _STREAM_LIMIT, loop=loop)
    if body:
        content.feed_data(body)
    content.feed_eof()
    resp.content = content
    return resp


def body_if_read(resp: ClientResponse) -> bytes | None:
    """The body of a live response if it was already read (by ``read()``), else ``None``."""
    body: bytes | None = resp._body
    return body


def entry_response(entry: Entry, request: ClientRequest, now: float) -> ClientResponse:
    """A stored entry as a finished response to ``request``, with its current ``Age``.

    The headers are built once per age and kept on the entry (``entry.view``): repeated
    hits within a second share them, and a hit then does what a prebuilt response does.
    """
    elapsed = now - entry.response_time  # current_age(), inlined: every hit's path
    age = int(entry.initial_age + elapsed if elapsed > 0.0 else entry.initial_age)
    view: Any = entry.view
    if view is None or view[0] != age:
        fields = CIMultiDict(entry.headers)
        fields["Age"] = str(age)
        view = entry.view = (age, CIMultiDictProxy(fields), _raw(fields))
    return build_response(
        request.method,
        request.url,
        status=entry.status,
        reason=entry.reason,
        headers=view[1],
        raw_headers=view[2],
        body=entry.body,
        request_info=request.request_info,
        loop=request.loop,
        session=getattr(request, "_session", None),
    )


def not_modified_response(entry: Entry, request: ClientRequest, age: float) -> ClientResponse:
    """A 304 answering the caller's own conditional request from a fresh entry."""
    fields: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in entry.headers if k.lower() in _304_FIELDS
    )
    fields["Age"] = str(int(age))
    return status_response(request, 304, "Not Modified", fields)


def status_response(
    request: ClientRequest, status: int, reason: str, fields: CIMultiDict[str] | None = None
) -> ClientResponse:
    """An empty response to ``request`` that no server sent (a cache's 304 or 504)."""
    fields = fields if fields is not None else CIMultiDict()
    return _respond(request, status, reason, CIMultiDictProxy(fields), _raw(fields), b"")


def _raw(fields: CIMultiDict[str]) -> tuple[tuple[bytes, bytes], ...]:
    # aiohttp decodes raw header bytes as UTF-8 with surrogateescape: this is its exact inverse.
    return tuple(
        (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for k, v in fields.items()
    )


def _respond(
    request: ClientRequest,
    status: int,
    reason: str,
    headers: CIMultiDictProxy[str],
    raw_headers: tuple[tuple[bytes, bytes], ...],
    body: bytes,
) -> ClientResponse:
    return build_response(
        request.method,
        request.url,
        status=status,
        reason=reason,
        headers=headers,
        raw_headers=raw_headers,
        body=body,
        request_info=request.request_info,
        loop=request.loop,
        session=getattr(request, "_session", None),
    )


def replay(resp: ClientResponse, body: bytes) -> None:
    """Make the ``body`` a layer read from a live response readable again through
    ``resp.content`` (``read``, ``iter_chunked``, ``readline``, ``async for line``, ...).

    aiohttp's ``read()`` keeps the body for ``read()``/``text()``/``json()`` but leaves
    ``content`` at its end; a fresh reader holding the body, its end already fed, takes its
    place (same buffer limit, so ``readline`` refuses the same long lines). It never pauses a
    transport: the body is all there.
    """
    old = resp.content
    content = StreamReader(_PROTOCOL, getattr(old, "_low_water", _STREAM_LIMIT), loop=resp._loop)
    if body:
        content.feed_data(body)
    content.feed_eof()
    resp.content = content
