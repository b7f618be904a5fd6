"""``Reply``: one scripted response of the MockServer, and the code that plays it.

Playing a reply is where the wire-level faults live:

* ``delay`` sleeps on the server's clock before anything is sent;
* ``drip`` sends the body in chunks, ``interval`` seconds apart on the server's clock;
* ``truncate`` announces the full ``Content-Length``, sends half the body, then closes the
  connection (FIN after the half is flushed): the client sees ``ClientPayloadError``;
* ``reset`` aborts the connection with a TCP RST (``SO_LINGER`` 0) before any byte of the
  response: the client sees ``ClientOSError`` (ECONNRESET) or ``ServerDisconnectedError``.
"""

from __future__ import annotations

import contextlib
import json as _json
import math
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from resilient_http._clock import Clock

__all__ = ["Reply", "HeaderItems", "as_reply", "play", "seconds", "sleep_until"]

HeaderItems = tuple[tuple[str, str], ...]
"""Response headers as an ordered tuple of ``(name, value)`` pairs (duplicates allowed)."""

_LINGER_RST = struct.pack("ii", 1, 0)


def seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """Validate a duration: a finite ``float``/``int`` of seconds or a ``timedelta``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be a number of seconds or a timedelta, got {value!r}"
        )
    result = float(value)
    if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {allowed}, got {value!r}")
    return result


def header_items(name: str, headers: object) -> HeaderItems:
    """Normalise a mapping or an iterable of pairs into :data:`HeaderItems`."""
    if headers is None:
        return ()
    pairs: Iterable[Any]
    if isinstance(headers, Mapping):
        pairs = headers.items()
    elif isinstance(headers, Iterable) and not isinstance(headers, (str, bytes)):
        pairs = headers
    else:
        raise TypeError(f"{name} must be a mapping or a sequence of (name, value) pairs, "
                        f"got {headers!r}")
    items: list[tuple[str, str]] = []
    for pair in pairs:
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str)
        ):
            raise TypeError(f"{name} entries must be (str, str) pairs, got {pair!r}")
        if not pair[0] or any(c in pair[0] for c in ":\r\n ") or any(c in pair[1] for c in "\r\n"):
            raise ValueError(f"{name} has an invalid header {pair!r}")
        items.append((pair[0], pair[1]))
    return tuple(items)


@dataclass(frozen=True, slots=True)
class Reply:
    """One response the :class:`MockServer` plays.

    Args:
        status: the HTTP status code, ``200`` to ``599``. Default ``200``.
        headers: extra response headers, a mapping or a sequence of ``(name, value)``
            pairs (use pairs to repeat a header). Stored as a tuple of pairs. Default none.
        body: the body, ``bytes`` or ``str`` (sent as UTF-8 with
            ``Content-Type: text/plain; charset=utf-8`` unless ``headers`` sets one).
            Default empty.
        json: a JSON-serialisable value sent as the body with
            ``Content-Type: application/json``; exclusive with ``body``. ``None`` (the
            default) means no JSON body.
        delay: seconds (or a ``timedelta``) to wait on the server's clock before the
            status line and headers are sent, counted from the arrival of the request.
            Default ``0.0``.
        drip: ``(chunk_bytes, interval_seconds)``: send the body in chunks of
            ``chunk_bytes`` bytes, ``interval_seconds`` apart on the server's clock (the
            first chunk goes with the headers). ``Content-Length`` is still the full length.
            Default ``None`` (the body is sent at once).
        truncate: announce the full ``Content-Length``, send only the first half of the
            body (``len(body) // 2`` bytes), then close the connection. The client sees
            ``aiohttp.ClientPayloadError`` when it reads the body. Needs a non-empty body.
            Default ``False``.
        reset: abort the connection (TCP RST) after ``delay`` and before any byte of the
            response; ``status``, ``headers`` and the body are then unused. The client sees
            ``aiohttp.ClientOSError`` or ``aiohttp.ServerDisconnectedError``. Note that
            aiohttp itself re-sends an idempotent request once after such an error, so
            the server then receives that request twice. Default ``False``.

    Raises:
        TypeError, ValueError: naming the parameter, when a value is of the wrong type or
        out of range.
    """

    status: int = 200
    _: KW_ONLY
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
    body: bytes | str = b""
    json: Any = None
    delay: float | timedelta = 0.0
    drip: tuple[int, float] | None = None
    truncate: bool = False
    reset: bool = False
    # Precomputed once, so playing a reply costs no validation or encoding.
    payload: bytes = field(init=False, repr=False, compare=False)
    """The encoded body as sent on the wire (``body`` or the serialised ``json``)."""
    header_items: HeaderItems = field(init=False, repr=False, compare=False)
    """``headers`` plus the implied ``Content-Type``, as pairs."""
    delay_seconds: float = field(init=False, repr=False, compare=False)
    """``delay`` as a float number of seconds."""

    def __post_init__(self) -> None:
        status = self.status
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"status must be an int, got {status!r}")
        if not 200 <= status <= 599:
            raise ValueError(f"status must be within 200..599, got {status!r}")
        given = items = header_items("headers", self.headers)
        for flag in ("truncate", "reset"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        body = self.body
        if isinstance(body, str):
            payload = body.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        elif isinstance(body, (bytes, bytearray, memoryview)):
            payload = bytes(body)
            content_type = "application/octet-stream"
        else:
            raise TypeError(f"body must be bytes or str, got {type(body).__name__}")
        if self.json is not None:
            if payload:
                raise ValueError("body and json are exclusive: give one of them")
            try:
                payload = _json.dumps(self.json, separators=(",", ":")).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise TypeError(f"json must be JSON-serialisable: {exc}") from None
            content_type = "application/json"
        if payload and status in (204, 304):
            raise ValueError(f"status {status} cannot carry a body")
        if payload and not any(k.lower() == "content-type" for k, _ in items):
            items = (*items, ("Content-Type", content_type))
        delay = seconds("delay", self.delay)
        drip = self.drip
        if drip is not None:
            if not isinstance(drip, (tuple, list)) or len(drip) != 2:
                raise TypeError(f"drip must be (chunk_bytes, interval_seconds), got {drip!r}")
            chunk, interval = drip
            if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk <= 0:
                raise ValueError(f"drip chunk_bytes must be an int > 0, got {chunk!r}")
            drip = (chunk, seconds("drip interval_seconds", interval))
            object.__setattr__(self, "drip", drip)
        if self.truncate and not payload:
            raise ValueError("truncate=True needs a non-empty body (or json)")
        if self.truncate and self.reset:
            raise ValueError("truncate and reset are exclusive")
        object.__setattr__(self, "headers", given)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "header_items", items)
        object.__setattr__(self, "delay_seconds", delay)


def as_reply(name: str, value: Reply | int) -> Reply:
    """Accept a :class:`Reply` or a bare status code (shorthand for ``Reply(status)``)."""
    if isinstance(value, Reply):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Reply(value)
    raise TypeError(f"{name} must be a Reply or an int status, got {value!r}")


async def sleep_until(clock: Clock, deadline: float) -> None:
    """Sleep on ``clock`` until ``deadline``; return at once when it has passed.

    Absolute deadlines make the server immune to a test advancing a fake clock before the
    handler got to its sleep.
    """
    remaining = deadline - clock.now()
    if remaining > 0:
        await clock.sleep(remaining)


def abort_with_rst(request: BaseRequest) -> None:
    """Close the request's connection abruptly with a TCP RST."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # the peer may be gone already
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


async def play(
    request: BaseRequest,
    reply: Reply,
    clock: Clock,
    received: float,
    extra_headers: HeaderItems = (),
) -> web.StreamResponse:
    """Send ``reply`` for ``request``, which arrived at ``received`` (server clock time)."""
    if reply.delay_seconds:
        await sleep_until(clock, received + reply.delay_seconds)
    if reply.reset:
        abort_with_rst(request)
        # aiohttp fails to write this on the aborted transport and drops it quietly.
        return web.Response(status=reply.status)
    headers = reply.header_items + extra_headers if extra_headers else reply.header_items
    if reply.drip is None and not reply.truncate:
        return web.Response(status=reply.status, body=reply.payload or None, headers=headers)
    return await _stream(request, reply, clock, headers)


async def _stream(
    request: BaseRequest, reply: Reply, clock: Clock, headers: HeaderItems
) -> web.StreamResponse:
    payload = reply.payload
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.content_length = len(payload)
    send = payload[: len(payload) // 2] if reply.truncate else payload
    chunk, interval = reply.drip if reply.drip is not None else (max(1, len(send)), 0.0)
    try:
        await response.prepare(request)
        start = clock.now()
        for index, offset in enumerate(range(0, len(send), chunk)):
            if index and interval:
                await sleep_until(clock, start + index * interval)
            await response.write(send[offset : offset + chunk])
    except ConnectionError:  # the client went away mid-body
        return response
    if reply.truncate and request.transport is not None:
        # close(), not abort(): the half already written is flushed before the FIN.
        request.transport.close()
    return response
