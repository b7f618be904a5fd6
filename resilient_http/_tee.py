"""The streaming tee of a cache miss: the caller reads the live body, the cache keeps a copy.

A cacheable miss is not read by the cache: :class:`Tee` takes the place of the response's
``content`` and hands the caller exactly what aiohttp's own ``StreamReader`` would (every
reading API: ``read``, ``readany``, ``readline``, ``readuntil``, ``readexactly``,
``readchunk``, ``read_nowait``, ``iter_chunked``, ``iter_any``, ``iter_chunks``, line
iteration, and ``ClientResponse.read``/``text``/``json`` on top of them), keeping a copy of
each piece it hands out. When the caller has read to the end, the copy goes to
:meth:`Sink.done`; a caller that stops early (releases the response, or drops it), a failed
read, or a body that outgrows ``limit`` ends the copy: :meth:`Sink.abandon` is called once,
and the caller keeps reading the rest untouched.

Only the pieces the caller reads are copied (they are the same ``bytes`` objects, not new
ones), so a miss costs no more memory than the caller's own reading plus at most ``limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, Protocol, cast

from aiohttp import ClientResponse
from aiohttp.streams import StreamReader

__all__ = ["Sink", "Tee", "tee"]


class Sink(Protocol):
    """Where a :class:`Tee` delivers: exactly one of the two calls, once."""

    def done(self, body: bytes) -> None:
        """The caller read the whole body: here it is."""

    def abandon(self) -> None:
        """No whole body will come (stopped early, failed, or larger than the limit)."""


class Tee(StreamReader):
    """A response's ``content`` that reads from the live stream and copies what it hands out.

    Everything but reading is passed to the live stream (``exception``, ``set_exception``,
    ``is_eof``, ``at_eof``, ``on_eof``, ``wait_eof``, ``total_bytes``, ...).
    """

    __slots__ = ("_source", "_copy", "_room", "_sink")

    def __init__(self, source: StreamReader, limit: int, sink: Sink) -> None:
        # The base reader is never fed: every call below goes to ``source``.
        super().__init__(cast(Any, None), 2**16, loop=asyncio.get_running_loop())
        self._source = source
        self._copy: list[bytes] | None = []
        self._room = limit
        self._sink: Sink | None = sink

    # ------------------------------------------------------------------ copying

    def _took(self, data: bytes) -> None:
        copy = self._copy
        if copy is None:
            return
        if data:
            self._room -= len(data)
            if self._room < 0:
                self._end(None)  # too large: stop copying, hand the rest through
                return
            copy.append(data)
        if self._source.at_eof():
            self._end(b"".join(copy))

    def _end(self, body: bytes | None) -> None:
        sink = self._sink
        self._copy = self._sink = None
        if sink is not None:
            if body is None:
                sink.abandon()
            else:
                sink.done(body)

    def _failed(self) -> None:
        if self._sink is not None:
            self._end(None)

    def __del__(self) -> None:
        if self._sink is not None:  # dropped before the end: nobody will read the rest
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                self._end(None)

    # ------------------------------------------------------------------ reading

    async def _pass(self, reading: Awaitable[bytes]) -> bytes:
        try:
            data = await reading
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        return await self._pass(self._source.read(n))

    async def readany(self) -> bytes:
        return await self._pass(self._source.readany())

    async def readuntil(self, separator: bytes = b"\n", **limits: Any) -> bytes:
        return await self._pass(self._source.readuntil(separator, **limits))

    async def readline(self, **limits: Any) -> bytes:
        return await self._pass(self._source.readline(**limits))

    async def readexactly(self, n: int) -> bytes:
        return await self._pass(self._source.readexactly(n))

    async def readchunk(self) -> tuple[bytes, bool]:
        try:
            data, end = await self._source.readchunk()
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data, end

    def read_nowait(self, n: int = -1) -> bytes:
        try:
            data = self._source.read_nowait(n)
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

    def unread_data(self, data: bytes) -> None:
        self._failed()  # the copy can no longer be trusted
        self._source.unread_data(data)

    # ------------------------------------------------------------------ the live stream's state

    def exception(self) -> BaseException | None:
        return self._source.exception()

    def set_exception(self, exc: BaseException, *cause: Any) -> None:
        self._failed()  # released before the end, or the connection failed
        self._source.set_exception(exc, *cause)

    def is_eof(self) -> bool:
        return self._source.is_eof()

    def at_eof(self) -> bool:
        return self._source.at_eof()

    def on_eof(self, callback: Any) -> None:
        self._source.on_eof(callback)

    async def wait_eof(self) -> None:
        await self._source.wait_eof()

    def feed_eof(self) -> None:
        self._source.feed_eof()

    def feed_data(self, data: bytes, size: int = 0) -> Any:
        return self._source.feed_data(data, size)

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return self._source.get_read_buffer_limits()

    @property
    def total_bytes(self) -> int:
        return self._source.total_bytes

    @total_bytes.setter
    def total_bytes(self, value: int) -> None:
        """Set by ``StreamReader.__init__`` only: the live stream counts."""

    def __repr__(self) -> str:
        return f"<Tee of {self._source!r}>"


def tee(resp: ClientResponse, limit: int, sink: Sink) -> None:
    """Make ``resp.content`` a :class:`Tee` of itself, delivering to ``sink``."""
    resp.content = Tee(resp.content, limit, sink)

