"""One page request of :func:`~resilient_http.paginate`, redirects followed hop by hop.

aiohttp follows a redirect to another origin with every header but ``Authorization``, so a
page request is sent with ``allow_redirects=False`` and each ``Location`` is followed here,
through the same session (its layers see every hop), under the pagination origin rule: a hop
to another origin is refused, or with ``allow_cross_origin=True`` made without the request's
credentials (``auth=``, ``cookies=``, credential headers and query parameters).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from yarl import URL

from resilient_http._redact import redact_url
from resilient_http.credentials import is_credential
from resilient_http.errors import PaginationError
from resilient_http.strategies import Page

__all__ = ["Hops", "fetch_page"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BODY = ("data", "json")  # what a redirect to GET drops


def _origin(url: URL) -> tuple[Any, ...]:
    return (url.scheme, url.host, url.port)


class Hops:
    """The request arguments for each origin a page request may reach (immutable, and no
    reference to the paginator, so an abandoned prefetch never keeps it alive).

    ``request_kwargs`` may hold ``allow_redirects`` (default ``True``) and
    ``max_redirects`` (default 10, aiohttp's), applied here per page.
    """

    __slots__ = ("origin", "allow_cross_origin", "home", "foreign", "follow", "max_redirects")

    def __init__(self, first: URL, kwargs: Mapping[str, Any], allow_cross_origin: bool) -> None:
        home = dict(kwargs)
        follow = home.pop("allow_redirects", True)
        if not isinstance(follow, bool):
            raise TypeError(f"allow_redirects must be a bool, got {follow!r}")
        limit = home.pop("max_redirects", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"max_redirects must be an int >= 0, got {limit!r}")
        self.origin = _origin(first)
        self.allow_cross_origin = allow_cross_origin
        self.home = home
        self.foreign = _without_credentials(home)
        self.follow = follow
        self.max_redirects = limit

    def kwargs_for(self, url: URL) -> dict[str, Any] | None:
        """The arguments for a request to ``url``; ``None``: its origin is refused."""
        if _origin(url) == self.origin:
            return self.home
        return self.foreign if self.allow_cross_origin else None


def _without_credentials(kwargs: dict[str, Any]) -> dict[str, Any]:
    foreign = {k: v for k, v in kwargs.items() if k not in ("auth", "cookies")}
    for name in ("headers", "params"):
        value = foreign.get(name)
        if value:
            if isinstance(value, str):
                value = URL.build(query_string=value).query
            items = value.items() if isinstance(value, Mapping) else value
            foreign[name] = [(k, v) for k, v in items if not is_credential(str(k))]
    return foreign


async def fetch_page(
    session: Any,
    method: str,
    url: URL,
    hops: Hops,
    number: int,
    extract: Callable[[Any], Any],
) -> Page:
    """One page: request (redirects followed under the origin rule), JSON, items."""
    where = f"page {number} ({redact_url(url)})"
    kwargs = hops.kwargs_for(url)
    if kwargs is None:  # the paginator checks next pages first; kept as a last guard
        raise PaginationError(f"{where}: another origin than the first page's; refused")
    for _ in range(hops.max_redirects + 1):
        async with session.request(method, url, allow_redirects=False, **kwargs) as resp:
            location = resp.headers.get("Location")
            if not (hops.follow and resp.status in _REDIRECTS and location is not None):
                resp.raise_for_status()
                raw = await resp.read()
                final, status, headers = resp.url, resp.status, resp.headers
                ctype = resp.content_type
                break
            status = resp.status
        url, kwargs = _redirect(where, url, location, hops)
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
            kwargs = {k: v for k, v in kwargs.items() if k not in _BODY}
    else:
        raise PaginationError(f"{where}: more than {hops.max_redirects} redirects")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise PaginationError(
            f"{where}: the body is not JSON ({ctype}, {len(raw)} bytes): {exc}"
        ) from None
    try:
        found = extract(body)
    except Exception as exc:
        raise PaginationError(f"{where}: {exc}") from exc
    if not isinstance(found, (list, tuple)):
        raise PaginationError(
            f"{where}: the items are a JSON {type(found).__name__}, not a list"
        )
    return Page(number, final, status, headers, body, found)


def _redirect(where: str, url: URL, location: str, hops: Hops) -> tuple[URL, dict[str, Any]]:
    """Where a redirect goes and with which arguments, or the :class:`PaginationError`."""
    try:
        target = url.join(URL(location))
    except (ValueError, TypeError) as exc:
        shown = redact_url(location)
        raise PaginationError(f"{where}: the redirect to {shown!r} is not a URL: {exc}") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise PaginationError(f"{where}: the redirect to {redact_url(target)} is not http(s)")
    kwargs = hops.kwargs_for(target)
    if kwargs is None:
        raise PaginationError(
            f"{where}: redirected to another origin ({redact_url(target)}); refused because "
            f"the request's credentials would follow it. Pass allow_cross_origin=True if you "
            f"trust it"
        )
    return target, kwargs
