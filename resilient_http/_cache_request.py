"""What ``Cache`` reads of a request: the facts the RFC 9111 rules need, ``Vary`` values."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientRequest
from multidict import CIMultiDictProxy
from yarl import URL

from resilient_http._cache_fields import Headers
from resilient_http._cache_model import Entry, RequestFacts
from resilient_http.credentials import credentialed

__all__ = ["facts", "joined", "match", "pairs", "vary_matches", "url_key", "KEYS"]


def facts(request: ClientRequest, owner: str | None) -> RequestFacts:
    """What the RFC 9111 rules need of ``request``."""
    headers = request.headers
    return RequestFacts(
        method=request.method,
        cache_control=joined(headers, "cache-control"),
        pragma=headers.get("Pragma"),
        if_none_match=headers.get("If-None-Match"),
        if_modified_since=headers.get("If-Modified-Since"),
        authorization=credentialed(owner),
    )


def joined(headers: Any, name: str) -> str | None:
    """All values of one field joined by ``", "``, or ``None``."""
    values = headers.getall(name, None)
    if not values:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)


def vary_matches(entry: Entry, headers: Any) -> bool:
    """Whether ``headers`` have the values ``entry`` was stored for (its ``Vary`` fields)."""
    return all(joined(headers, name) == value for name, value in entry.vary)


def match(variants: Any, method: str, owner: str | None, headers: Any) -> Entry | None:
    """The stored variant that answers a request (its method, owner and ``Vary`` values)."""
    for candidate in variants or ():
        if (
            candidate.method == method
            and candidate.owner == owner
            and (not candidate.vary or vary_matches(candidate, headers))
        ):
            return candidate  # type: ignore[no-any-return]
    return None


def pairs(headers: CIMultiDictProxy[str]) -> Headers:
    """Header fields as (name, value) pairs, in order."""
    return tuple((str(k), v) for k, v in headers.items())


# The key of a URL (its text) by the URL object's identity: aiohttp requests to one URL
# share one ``yarl.URL`` (yarl caches its parses), so a hit reads the text back instead of
# writing it again. Each entry holds its URL, so an ``id`` is never reused while it is here.
KEYS: dict[int, tuple[URL, str]] = {}
_KEYS_SIZE = 256  # URLs remembered; the table is emptied when full


def url_key(url: URL) -> str:
    """``str(url)``, remembered for this URL object (see :data:`KEYS`)."""
    known = KEYS.get(id(url))
    if known is not None and known[0] is url:
        return known[1]
    if len(KEYS) >= _KEYS_SIZE:
        KEYS.clear()
    text = str(url)
    KEYS[id(url)] = (url, text)
    return text
