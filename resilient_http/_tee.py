"""The streaming tee of a cache miss: the caller reads the live body, the cache keeps a copy.

A cacheable miss is not read by the cache: a :class:`Tee` takes the place of the response's
``content`` and hands the caller exactly what aiohttp's own ``StreamReader`` would (every
reading API: ``read``, ``readany``, ``readline``, ``readuntil``, ``readexactly``,
``readchunk``, ``read_nowait``, ``iter_chunked``, ``iter_any``, ``iter_chunks``, line
iteration, and ``ClientResponse.read``/``text``/``json`` on top of them), keeping a copy of
each piece it hands out. When the caller has read to the end, the copy goes to
:meth:`Tee.done`; a caller that stops early (releases the response, or drops it), a failed
read, or a body that outgrows ``limit`` ends the copy: :meth:`Tee.abandon` is called once,
and the caller keeps reading the rest untouched. A subclass says what ``done`` and
``abandon`` do.

Only the pieces the caller reads are copied (they are the same ``bytes`` objects, not new
ones), so a miss costs no more memory than the caller's own reading plus at most ``limit``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp.streams import StreamReader

__all__ = ["Tee"]

_OWN = frozenset(("_source", "_copy", "_room"))


class Tee(StreamReader):
    """A response's ``content`` that reads from the live stream and copies what it hands out.

    Everything but reading is passed to the live stream (``exception``, ``set_exception``,
    ``is_eof``, ``at_eof``, ``on_eof``, ``wait_eof``, ``total_bytes``, ...). The base
    reader's own state is never set up (it is never fed nor read: every method that would
    touch it is overridden), which spares a ``StreamReader`` construction per miss.
    """

    __slots__ = ("_source", "_copy", "_room")

    def __init__(self, source: StreamReader, limit: int) -> None:
        self._source = source
        self._copy: list[bytes] | None = []
        """The pieces handed out so far; ``None`` once the copy has ended."""
        self._room = limit

    def done(self, body: bytes) -> None:
        """The caller read the whole body: here it is."""
        raise NotImplementedError

    def abandon(self) -> None:
        """No whole body will come (stopped early, failed, or larger than the limit)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ copying

    def _took(self, data: bytes) -> None:
        copy = self._copy
        if copy is None:
            return
        if data:
            self._room -= len(data)
            if self._room < 0:
                self._copy = None  # too large: stop copying, hand the rest through
                self.abandon()
                return
            copy.append(data)
        if self._source.at_eof():
            self._copy = None
            self.done(b"".join(copy))

    def _failed(self) -> None:
        if self._copy is not None:
            self._copy = None
            self.abandon()

    def __del__(self) -> None:
        if self._copy is not None:  # dropped before the end: nobody will read the rest
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                self._failed()

    # ------------------------------------------------------------------ reading

    async def read(self, n: int = -1) -> bytes:
        try:
            data = await self._source.read(n)
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

    async def readany(self) -> bytes:
        try:
            data = await self._source.readany()
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

    async def readuntil(self, separator: bytes = b"\n", **limits: Any) -> bytes:
        try:
            data = await self._source.readuntil(separator, **limits)
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

    async def readline(self, **limits: Any) -> bytes:
        try:
            data = await self._source.readline(**limits)
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        try:
            data = await self._source.readexactly(n)
        except BaseException:
            self._failed()
            raise
        self._took(data)
        return data

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
        if self._copy is not None:  # released before the end, or the connection failed
            self._failed()
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

    def begin_http_chunk_receiving(self) -> None:
        self._source.begin_http_chunk_receiving()

    def end_http_chunk_receiving(self) -> None:
        self._source.end_http_chunk_receiving()

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return self._source.get_read_buffer_limits()

    def set_read_chunk_size(self, n: int) -> None:
        self._source.set_read_chunk_size(n)

    def __getattr__(self, name: str) -> Any:
        """The live stream's other attributes (``total_raw_bytes``, ``_low_water``, ...): the
        base reader's own state is never set."""
        if name in _OWN:
            raise AttributeError(name)  # not set yet (only in a failed construction)
        return getattr(self._source, name)

    @property
    def total_bytes(self) -> int:
        return self._source.total_bytes

    @total_bytes.setter
    def total_bytes(self, value: int) -> None:
        self._source.total_bytes = value

    def __repr__(self) -> str:
        return f"<Tee of {self._source!r}>"
