"""The cache's data model: its configuration, a request's facts, a stored entry, and the
verdicts of :func:`resilient_http._rfc9111.decide`."""

from __future__ import annotations

from dataclasses import dataclass, field

from resilient_http._cache_fields import Headers

__all__ = [
    "Policy", "RequestFacts", "Entry", "Fresh", "NotModified", "ServeStale", "Revalidate",
    "Verdict",
]

@dataclass(frozen=True, slots=True)
class Policy:
    """The cache's configuration, as the rules see it.

    Attributes:
        shared: behave as a shared cache (``s-maxage``, ``private``, ``Authorization``).
        ttl: lifetime in seconds of a response without freshness information (0 = reuse
            only after revalidation).
        respect_headers: when false, Cache-Control/Expires/Age are ignored and every response
            with a heuristically cacheable status lives ``ttl`` seconds.
        stale_if_error: seconds past expiry a stale entry may stand in for a failed origin
            when the response does not say (its ``stale-if-error`` wins).
        stale_while_revalidate: seconds past expiry a stale entry may be served while it is
            refreshed in the background, when the response does not say.
    """

    shared: bool = False
    ttl: float = 60.0
    respect_headers: bool = True
    stale_if_error: float = 0.0
    stale_while_revalidate: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the rules need from a request: its method and its caching-related fields."""

    method: str = "GET"
    cache_control: str | None = None
    pragma: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    authorization: bool = False
    """Whether the request carries credentials (``Authorization``)."""


@dataclass(slots=True, eq=False)
class Entry:
    """A stored response, with everything :func:`decide` needs precomputed.

    ``fresh_until`` is the time (on the caller's clock) when the entry turns stale;
    ``initial_age`` the corrected age when it was received (RFC 9111 §4.2.3).
    """

    method: str
    status: int
    reason: str
    headers: Headers
    body: bytes
    vary: tuple[tuple[str, str | None], ...]
    request_time: float
    response_time: float
    initial_age: float
    lifetime: float
    fresh_until: float
    no_cache: bool
    must_revalidate: bool
    etag: str | None
    last_modified: str | None
    stale_if_error: float
    stale_while_revalidate: float
    size: int
    owner: str | None = None
    """Who may reuse it: set by the layer (a digest of the caller's credentials in a private
    cache); the rules never read it."""
    view: object = field(default=None, repr=False)
    """Free slot for the layer (a prebuilt header view); the rules never read it."""


@dataclass(frozen=True, slots=True)
class Fresh:
    """Serve the entry as it is; ``age`` in seconds for the ``Age`` field."""

    age: float


@dataclass(frozen=True, slots=True)
class NotModified:
    """The caller's own conditional request matches the fresh entry: answer 304."""

    age: float


@dataclass(frozen=True, slots=True)
class ServeStale:
    """Serve the stale entry now and refresh it in the background (stale-while-revalidate)."""

    age: float
    conditional: Headers


@dataclass(frozen=True, slots=True)
class Revalidate:
    """Ask the origin, adding ``conditional`` (empty when the entry has no validators: the
    request is then unconditional and the entry only serves stale-if-error)."""

    conditional: Headers


Verdict = Fresh | NotModified | ServeStale | Revalidate
