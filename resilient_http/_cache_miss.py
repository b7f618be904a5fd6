"""A cache miss on its way to the store: what storing it needs of its request
(:func:`_facts`, :func:`_vary`), and :class:`_Fill`, the tee that stores it once the caller has
read the body (see :mod:`resilient_http._cache_fill`)."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientRequest
from yarl import URL

from resilient_http._cache_fields import Headers, vary_of
from resilient_http._cache_model import RequestFacts
from resilient_http._cache_request import joined
from resilient_http._flight import Pending
from resilient_http._tee import Tee
from resilient_http.credentials import credentialed

__all__ = ["Vary", "_PLAIN", "_Fill", "_facts", "_vary"]

Vary = tuple[tuple[str, str | None], ...]

_PLAIN = {m: RequestFacts(method=m) for m in ("GET", "HEAD")}
"""The facts of a request without credentials nor ``Cache-Control``, by method."""


def _facts(request: ClientRequest, owner: str | None) -> RequestFacts:
    """What storing a response needs of its request (:func:`can_store`,
    :func:`make_entry`): the method, ``Cache-Control`` and whether it carried credentials."""
    if owner is None and "Cache-Control" not in request.headers:
        return _PLAIN[request.method]
    return RequestFacts(
        method=request.method,
        cache_control=joined(request.headers, "cache-control"),
        authorization=credentialed(owner),
    )


def _vary(request: ClientRequest, fields: dict[str, str]) -> Vary:
    """The request's values of the fields the response's ``Vary`` names."""
    value = fields.get("vary")
    if value is None:
        return ()
    return tuple((n, joined(request.headers, n)) for n in vary_of(value) or ())


class _Fill(Tee):
    """The tee of a storable response on its way to the store: what storing it needs, and
    nothing that holds the request or the response."""

    __slots__ = ("cache", "pending", "method", "url", "status", "reason", "headers", "fields",
                 "vary")

    cache: Any  # the Filler (Cache) storing it
    pending: Pending
    method: str
    url: URL
    status: int
    reason: str
    headers: Headers
    fields: dict[str, str]
    vary: Vary

    def done(self, body: bytes) -> None:
        cache = self.cache
        entry = cache._store(self.pending, self.method, self.url, self.status, self.reason,
                             self.headers, self.fields, self.vary, body)
        cache._land(self.pending, (entry, None) if entry is not None else None)

    def abandon(self) -> None:
        cache = self.cache
        cache._events.emit(
            "cache.not_stored", self.method, self.url, reason="body not read whole"
        )
        cache._land(self.pending, None)
