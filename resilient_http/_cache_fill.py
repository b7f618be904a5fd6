"""The way out of ``Cache``: storing a miss, revalidating, stale-if-error, invalidation.

:class:`Filler` is the request-mode ``exit`` half of ``Cache`` (a mixin: ``Cache`` supplies the
attributes). A storable response whose body is already read (by a layer inside, or because it
is empty) is stored at once. Otherwise it is handed to the caller as it is, with its
``content`` teed (:mod:`resilient_http._tee`): the entry is stored when the caller has read
the body to the end. What cannot be stored whole is never buffered: a ``Content-Length``
over ``max_bytes``, a body that outgrows it while teed, and (unless ``store_streams``) a
``text/event-stream`` or a body that only ends when the connection closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from aiohttp import ClientError, ClientRequest, ClientResponse
from yarl import URL

from resilient_http._cache_fields import fields_of
from resilient_http._cache_miss import _PLAIN, Vary, _facts, _Fill, _vary
from resilient_http._cache_request import facts, pairs
from resilient_http._clock import Clock
from resilient_http._flight import Flight, Pending
from resilient_http._info import STALE, info, tag
from resilient_http._middleware import REENTER, REQUEST, Call, Short, Step
from resilient_http._response import body_if_read, entry_response
from resilient_http._rfc9111 import (
    Entry,
    Policy,
    can_store,
    invalidated_urls,
    make_entry,
    refreshed,
    stale_on_error,
)
from resilient_http._store import CacheStore, forget, put
from resilient_http.events import DEBUG_LOG, Emitter

__all__ = ["Filler", "UNSAFE"]

UNSAFE = object()
"""The slot value of an unsafe request (its success invalidates the URL's entries)."""

Headers = tuple[tuple[str, str], ...]
class Filler:
    """The request-mode ``exit`` of ``Cache``."""

    __slots__ = ()

    max_bytes: int
    store_streams: bool
    store: CacheStore
    clock: Clock
    _policy: Policy
    _events: Emitter
    _flights: dict[Any, Flight]
    _tasks: set[asyncio.Future[Any]]
    key: Any

    def _exit_request(self, call: Call, i: int, pending: Any, result: Any,
                      error: BaseException | None) -> Step:
        request = call[REQUEST]
        if pending is UNSAFE:
            if error is None and isinstance(result, ClientResponse):
                self._invalidate(request, result)
            return None
        outcome: Any = None
        try:
            if error is not None or not isinstance(result, ClientResponse):
                if isinstance(error, asyncio.CancelledError):
                    self._hand_over(pending)  # one waiter goes in our place
                    return None
                if (
                    pending.entry is not None
                    and isinstance(error, (ClientError, OSError, asyncio.TimeoutError))
                    and stale_on_error(pending.entry, self.clock.now())
                ):
                    outcome = (pending.entry, "error")
                    return self._serve_stale(request, pending.entry, "error")
                return None
            status = result.status
            if status == 304 and pending.entry is not None:
                step = self._not_modified(call, i, request, pending, result)
                pending = None  # the flight is landed (or kept) by _not_modified
                return step
            if (
                status >= 500
                and pending.entry is not None
                and stale_on_error(pending.entry, self.clock.now())
            ):
                result.release()
                outcome = (pending.entry, "error")
                return self._serve_stale(request, pending.entry, "error")
            request_facts = _facts(request, pending.owner)
            headers: Headers = tuple(result.headers.items())
            fields = fields_of(headers)
            reason = can_store(self._policy, request_facts, status, headers, fields)
            body = body_if_read(result)
            content = result.content
            unread = body is None and not content.at_eof()
            if reason is None and unread:
                reason = self._unbuffered(result, fields)
            if reason is not None:
                self._events.emit("cache.not_stored", request.method, request.url, reason=reason)
                if pending.entry is not None and 200 <= status < 300:
                    self._forget(pending.key, pending.entry)
                return None
            vary = _vary(request, fields) if "vary" in fields else ()
            if unread:  # stored when the caller read it all
                fill = _Fill(content, self.max_bytes)
                fill.cache = self
                fill.pending = pending
                fill.method = request.method
                fill.url = request.url
                fill.status = status
                fill.reason = result.reason or ""
                fill.headers = headers
                fill.fields = fields
                fill.vary = vary
                result.content = fill
                pending = None
                return None
            entry = self._store(pending, request.method, request.url, status,
                                result.reason or "", headers, fields, vary, body or b"")
            outcome = (entry, None) if entry is not None else None
            return None
        finally:
            if pending is not None:
                self._land(pending, outcome)

    def _unbuffered(self, result: ClientResponse, fields: dict[str, str]) -> str | None:
        """Why the unread body of ``result`` must not be buffered, or ``None``."""
        length_text = fields.get("content-length")
        length = (
            int(length_text) if length_text is not None and length_text.isdigit()
            else result.content_length
        )
        if length is not None and length > self.max_bytes:
            return "too large"
        if self.store_streams:
            return None
        kind = fields.get("content-type")
        if (
            kind is not None
            and "event-stream" in kind.lower()
            and result.content_type == "text/event-stream"
        ):
            return "event stream"
        if length is None and "chunked" not in result.headers.get("Transfer-Encoding", "").lower():
            return "no known end"
        return None

    def _absorb(self, request: ClientRequest, pending: Pending, resp: ClientResponse,
                body: bytes) -> None:
        """Store a background refresh's answer that did not pass through this cache."""
        old = pending.entry
        headers = pairs(resp.headers)
        if resp.status == 304 and old is not None:
            self._land(pending, (self._revalidated(request.method, request.url, pending, old,
                                                   headers), None))
            return
        request_facts = facts(request, pending.owner)
        fields = fields_of(headers)
        if can_store(self._policy, request_facts, resp.status, headers, fields) is None:
            entry = self._store(pending, request.method, request.url, resp.status,
                                resp.reason or "", headers, fields, _vary(request, fields),
                                body)
            self._land(pending, (entry, None) if entry is not None else None)

    def _store(
        self, pending: Pending, method: str, url: URL, status: int, reason: str,
        headers: Headers, fields: dict[str, str], vary: Vary, body: bytes,
    ) -> Entry | None:
        entry = make_entry(
            self._policy, _PLAIN[method], status=status, reason=reason, headers=headers,
            body=body, vary=vary, request_time=pending.request_time,
            response_time=self.clock.now(), wall=time.time(), fields=fields,
        )
        entry.owner = pending.owner
        events = self._events
        if entry.size > self.max_bytes:
            events.emit("cache.not_stored", method, url, reason="too large")
            return None
        if (
            entry.lifetime <= 0 and entry.etag is None and entry.last_modified is None
            and entry.stale_if_error <= 0 and entry.stale_while_revalidate <= 0
        ):
            events.emit("cache.not_stored", method, url, reason="nothing to reuse")
            return None
        self._put(pending.key, entry, pending.entry)
        if events.hooks or DEBUG_LOG.on:
            events.emit(
                "cache.stored", method, url, status=entry.status,
                lifetime=entry.lifetime, size=entry.size,
            )
        return entry

    def _not_modified(
        self, call: Call, i: int, request: ClientRequest, pending: Pending,
        result: ClientResponse,
    ) -> Step:
        old = pending.entry
        assert old is not None
        headers = pairs(result.headers)
        etag = result.headers.get("ETag")
        if etag is not None and old.etag is not None and etag.strip() != old.etag.strip():
            # The 304 validates another representation than ours: forget ours.
            self._forget(pending.key, old)
            pending.entry = None
            if not pending.added:
                self._land(pending, None)
                return None  # the caller's own conditional request: the 304 is theirs
            # We asked: ask again without our validators (once), keeping the flight.
            result.release()
            for name, _ in pending.added:
                request.headers.popall(name, None)
            pending.added = ()
            call[i] = pending
            again: Step = REENTER
            return again
        entry = self._revalidated(request.method, request.url, pending, old, headers)
        self._land(pending, (entry, None))
        if not pending.added:
            return None  # the caller's own conditional request: it asked for the 304
        result.release()
        for name, _ in pending.added:
            request.headers.popall(name, None)
        revalidated = replace(info(result), cache="revalidated")  # the 304's attempts, waits
        return Short(tag(entry_response(entry, request, self.clock.now()), revalidated))

    def _revalidated(
        self, method: str, url: URL, pending: Pending, old: Entry, headers: Headers
    ) -> Entry:
        """Store ``old`` refreshed by a 304's ``headers`` in its place, and return it."""
        entry = refreshed(
            self._policy, old, headers, request_time=pending.request_time,
            response_time=self.clock.now(), wall=time.time(),
        )
        entry.owner = old.owner
        self._put(pending.key, entry, old)
        self._events.emit("cache.revalidated", method, url)
        return entry

    def _serve_stale(self, request: ClientRequest, entry: Entry, why: str) -> Short:
        self._events.emit("cache.served_stale", request.method, request.url, why=why)
        return Short(tag(entry_response(entry, request, self.clock.now()), STALE))

    def _invalidate(self, request: ClientRequest, result: ClientResponse) -> None:
        urls = invalidated_urls(request.url, result.status, result.headers.items())
        if not urls:
            return
        keys = [self.key(request)] if self.key is not None else []
        keys += [str(u) for u in urls]
        for key in dict.fromkeys(keys):
            done = self.store.delete(key)
            if done is not None:
                self._spawn(done)
        self._events.emit("cache.invalidated", request.method, request.url, count=len(keys))

    def _put(self, key: str, entry: Entry, old: Entry | None) -> None:
        put(self.store, key, entry, old, self._spawn)

    def _forget(self, key: str, entry: Entry) -> None:
        forget(self.store, key, entry, self._spawn)

    def _land(self, pending: Pending, outcome: Any) -> None:
        raise NotImplementedError

    def _hand_over(self, pending: Pending) -> None:
        raise NotImplementedError

    def _spawn(self, aw: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
