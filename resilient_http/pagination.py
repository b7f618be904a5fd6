"""``paginate()``: iterate over every item of a paginated collection, page by page.

Each page is an ordinary request on the session you pass (a ``ClientSession`` or a
:func:`~resilient_http.wrap` result), so its middlewares — retry, rate limit, cache — apply
to every page. Where the next page is comes from a strategy (:mod:`resilient_http.strategies`,
ready-made ones in :mod:`resilient_http.presets`).

Safety rules, each a :class:`~resilient_http.PaginationError`:

- a next page, or a redirect of any page (the first included), to another origin (scheme,
  host, port) is refused unless ``allow_cross_origin=True``: the request would carry the
  credentials there (when allowed, the per-request credentials are dropped for that origin).
  Redirects are followed here, hop by hop, not by aiohttp;
- a next page whose URL was already fetched (same path and query, in any order) stops the
  iteration instead of looping forever;
- a page that is not JSON, has no item list, or from which the strategy cannot tell the next
  page names the page number, its URL (redacted) and the problem. Such an error is raised
  when the page that cannot be reached is asked for: the items before it are delivered.

HTTP errors are not pagination errors: a page answered with 4xx/5xx (after the session's
retries) raises aiohttp's ``ClientResponseError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from yarl import URL

from resilient_http._pagefetch import Hops, fetch_page
from resilient_http._redact import redact_url
from resilient_http._validate import method_name, session_like, show
from resilient_http.errors import PaginationError
from resilient_http.strategies import MISSING, ItemsSpec, Page, get_path, path_of

__all__ = ["paginate", "Paginator"]


def paginate(
    session: Any,
    url: str | URL,
    strategy: Any,
    *,
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    items: ItemsSpec = None,
    max_pages: int | None = None,
    max_items: int | None = None,
    allow_cross_origin: bool = False,
    prefetch: bool = False,
    method: str = "GET",
    **request_kwargs: Any,
) -> Paginator:
    """Iterate over the items of a paginated collection; ``.pages()`` gives whole pages.

    ::

        async for repo in rh.paginate(session, "https://api.github.com/orgs/aio-libs/repos",
                                      rh.presets.github(page_size=100)):
            print(repo["full_name"])

    Args:
        session: anything with aiohttp's ``request(method, url, **kw)``: a
            ``ClientSession`` or a :func:`~resilient_http.wrap` result. Not closed here.
        url: the first page's URL (absolute). A parameter written here (or in ``params``)
            wins over the strategy's own first parameters: ``?limit=3`` with
            ``presets.stripe()`` asks for 3 items, not the preset's 100.
        strategy: where the next page is (:mod:`resilient_http.strategies`).
        params: query parameters of the first request; strategies carry them on when they
            build the next URL from parameters (a next *link* is followed as given).
        items: where the items are in a page's body: a dotted path (``"data"``), a sequence
            of keys, or a callable ``body -> list``. Default ``None``: the strategy's own
            ``items``, else the body itself when it is a list, else its only list-valued
            field.
        max_pages: stop after this many pages. Default ``None`` (no limit).
        max_items: stop after this many items. ``.pages()`` stops after the page that reaches
            it (pages are not cut). Default ``None``.
        allow_cross_origin: follow next links and redirects to another origin. Default
            ``False``. Even then, the credentials passed here (``auth=``, ``cookies=``, and
            the credential headers and query parameters in ``headers=`` and ``params=``, by
            the rule of :mod:`resilient_http.credentials`) are not sent there; a session's
            own default headers and cookie jar are aiohttp's to send, so keep credentials
            per request when you allow this.
        prefetch: fetch the next page while the caller works on the current one (at most one
            page ahead, in a task). Default ``False``. When it is on and the caller may stop
            early, close the iterator — ``async with contextlib.aclosing(rh.paginate(...))
            as it:`` — so the task is cancelled at once (otherwise it is cancelled when the
            iterator is garbage-collected).
        method: the request method. Default ``"GET"``.
        **request_kwargs: passed to every request (``headers=``, ``timeout=``, …);
            ``allow_redirects`` (default ``True``) and ``max_redirects`` (default 10) apply
            to the redirects of each page.

    Returns:
        A :class:`Paginator`: an async iterator of items, single use.
    """
    session_like(session)
    if not callable(getattr(strategy, "next", None)):
        raise TypeError(
            f"strategy must have a next(page) method (e.g. rh.LinkHeader(), "
            f"rh.presets.github()), got {show(strategy)}"
        )
    if isinstance(url, str):
        url = URL(url)
    elif not isinstance(url, URL):
        raise TypeError(f"url must be a str or a yarl.URL, got {type(url).__name__} {show(url)}")
    if not url.is_absolute() or url.scheme not in ("http", "https"):
        raise ValueError(f"url must be an absolute http(s) URL, got {str(url)!r}")
    for name, value in (("max_pages", max_pages), ("max_items", max_items)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ValueError(f"{name} must be an int >= 1 or None, got {show(value)}")
    for name, flag in (("allow_cross_origin", allow_cross_origin), ("prefetch", prefetch)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {show(flag)}")
    method = method_name(method)
    extract = _extractor(items if items is not None else getattr(strategy, "items", None))
    first = getattr(strategy, "first_params", None)
    first_params = dict(first()) if callable(first) else {}
    if params is not None:
        try:
            url = url.extend_query(params)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"params must be a mapping or a sequence of (name, value) pairs of str, int or "
                f"float values, got {show(params)}: {exc}"
            ) from None
    if first_params:  # the caller's own parameters (in the URL or params=) win
        url = url.update_query(
            {k: _qs(v) for k, v in first_params.items() if k not in url.query}
        )
    return Paginator(
        session,
        method.upper(),
        url,
        strategy,
        extract,
        Hops(url, request_kwargs, allow_cross_origin),
        max_pages,
        max_items,
        allow_cross_origin,
        prefetch,
    )


def _qs(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _key(url: URL) -> tuple[Any, ...]:
    """What makes two page URLs "the same page": origin, path, query in any order."""
    return (url.scheme, url.host, url.port, url.path, tuple(sorted(url.query.items())))


def _extractor(spec: ItemsSpec) -> Callable[[Any], Any]:
    if spec is None:
        return _auto_items
    if callable(spec):
        return spec
    path = path_of("items", spec)
    name = ".".join(path)

    def at_path(body: Any) -> Any:
        found = get_path(body, path)
        if found is MISSING:
            raise ValueError(f"the body has no {show(name)} field")
        return found

    return at_path


def _auto_items(body: Any) -> Any:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        lists = [k for k, v in body.items() if isinstance(v, list)]
        if len(lists) == 1:
            return body[lists[0]]
        if not lists:
            raise ValueError("the body holds no list of items; pass items= to say where they are")
        raise ValueError(f"the body holds several lists ({', '.join(lists)}); pass items=")
    raise ValueError(f"the body is a JSON {type(body).__name__}, not a list or an object")


class Paginator:
    """What :func:`paginate` returns: an async iterator of items (single use), with
    :meth:`pages` for whole pages and :meth:`aclose` to stop early.

    Also an async context manager that closes it: ``async with rh.paginate(...) as items:``.
    """

    __slots__ = (
        "_session",
        "_method",
        "_first",
        "_origin",
        "_strategy",
        "_extract",
        "_hops",
        "_max_pages",
        "_max_items",
        "_allow_cross_origin",
        "_prefetch",
        "_next",
        "_seen",
        "_number",
        "_fetched_items",
        "_task",
        "_buf",
        "_pos",
        "_yielded",
        "_mode",
    )

    def __init__(
        self,
        session: Any,
        method: str,
        first: URL,
        strategy: Any,
        extract: Callable[[Any], Any],
        hops: Hops,
        max_pages: int | None,
        max_items: int | None,
        allow_cross_origin: bool,
        prefetch: bool,
    ) -> None:
        self._session = session
        self._method = method
        self._first = first
        self._origin = (first.scheme, first.host, first.port)
        self._strategy = strategy
        self._extract = extract
        self._hops = hops
        self._max_pages = max_pages
        self._max_items = max_items
        self._allow_cross_origin = allow_cross_origin
        self._prefetch = prefetch
        # The next page: a URL to fetch, None at the end, or the error that stopped us.
        self._next: URL | PaginationError | None = first
        self._seen = {_key(first)}
        self._number = 0  # pages delivered
        self._fetched_items = 0
        self._task: asyncio.Task[Page] | None = None
        self._buf: Sequence[Any] = ()
        self._pos = 0
        self._yielded = 0
        self._mode: str | None = None

    # -- public -----------------------------------------------------------------------------

    def __aiter__(self) -> Paginator:
        if self._mode != "items":
            self._claim("items")
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._max_items is not None and self._yielded >= self._max_items:
                await self.aclose()
                raise StopAsyncIteration
            if self._pos < len(self._buf):
                item = self._buf[self._pos]
                self._pos += 1
                self._yielded += 1
                return item
            self._buf = ()  # let the finished page go
            page = await self._next_page()
            self._buf = page.items
            self._pos = 0

    def pages(self) -> _Pages:
        """An async iterator of :class:`~resilient_http.strategies.Page` objects instead of
        items (same limits, same safety rules)."""
        self._claim("pages")
        return _Pages(self)

    async def aclose(self) -> None:
        """Stop: cancel a prefetch in flight and wait until it is gone. Idempotent."""
        self._next = None
        self._buf = ()
        task = self._task
        if task is not None:
            self._task = None
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))
            if not task.cancelled():
                task.exception()  # retrieved: no "exception never retrieved" log

    async def __aenter__(self) -> Paginator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        task = self._task
        if task is not None:
            if not task.done():
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    task.cancel()
            elif not task.cancelled():
                task.exception()

    def __repr__(self) -> str:
        return (
            f"<Paginator {self._method} {redact_url(self._first)} {self._strategy!r} "
            f"pages={self._number}>"
        )

    # -- engine -----------------------------------------------------------------------------

    def _claim(self, mode: str) -> None:
        if self._mode is not None:
            raise RuntimeError(
                f"this paginator is already iterated (over {self._mode}); call paginate() "
                f"again to start over"
            )
        self._mode = mode

    async def _next_page(self) -> Page:
        task = self._task
        nxt = self._next
        if task is None:
            if nxt is None:
                raise StopAsyncIteration
            if isinstance(nxt, PaginationError):
                self._next = None
                raise nxt
        try:
            if task is not None:
                self._task = None
                page = await task
            else:
                assert isinstance(nxt, URL)
                page = await fetch_page(
                    self._session, self._method, nxt, self._hops, self._number + 1,
                    self._extract,
                )
        except BaseException:
            self._next = None  # an iterator that raised is finished
            raise
        self._number = page.number
        self._fetched_items += len(page.items)
        self._next = self._after(page)
        if self._prefetch and isinstance(self._next, URL):
            self._task = asyncio.get_running_loop().create_task(
                fetch_page(
                    self._session,
                    self._method,
                    self._next,
                    self._hops,
                    page.number + 1,
                    self._extract,
                )
            )
        return page

    def _after(self, page: Page) -> URL | PaginationError | None:
        """Where the page after ``page`` is, within the limits and the safety rules."""
        if self._max_pages is not None and page.number >= self._max_pages:
            return None
        if self._max_items is not None and self._fetched_items >= self._max_items:
            return None
        where = f"page {page.number} ({redact_url(page.url)})"
        try:
            nxt = self._strategy.next(page)
        except Exception as exc:
            error = PaginationError(f"{where}: cannot find the next page: {exc}")
            error.__cause__ = exc
            return error
        if nxt is None:
            return None
        if isinstance(nxt, (str, URL)):
            try:
                target = page.url.join(URL(nxt) if isinstance(nxt, str) else nxt)
            except (ValueError, TypeError) as exc:
                return PaginationError(f"{where}: the next link {nxt!r} is not a URL: {exc}")
        elif isinstance(nxt, Mapping):
            target = self._first.update_query({str(k): _qs(v) for k, v in nxt.items()})
        else:
            return PaginationError(
                f"{where}: {type(self._strategy).__name__}.next() returned "
                f"{type(nxt).__name__}; expected None, a URL or a mapping of query parameters"
            )
        if target.scheme not in ("http", "https") or not target.host:
            return PaginationError(f"{where}: the next page {str(target)!r} is not an http(s) URL")
        origin = (target.scheme, target.host, target.port)
        if origin != self._origin and not self._allow_cross_origin:
            return PaginationError(
                f"{where}: the next page is on another origin ({redact_url(target)}, started "
                f"on {redact_url(self._first.origin())}); refused because the session's "
                f"credentials would follow it. Pass allow_cross_origin=True if you trust it"
            )
        key = _key(target)
        if key in self._seen:
            return PaginationError(
                f"{where}: the next page {redact_url(target)} was already fetched; stopping "
                f"instead of looping"
            )
        self._seen.add(key)
        return target


class _Pages:
    """The ``.pages()`` view of a :class:`Paginator`."""

    __slots__ = ("_paginator",)

    def __init__(self, paginator: Paginator) -> None:
        self._paginator = paginator

    def __aiter__(self) -> _Pages:
        return self

    async def __anext__(self) -> Page:
        return await self._paginator._next_page()

    async def aclose(self) -> None:
        """Stop early (see :meth:`Paginator.aclose`)."""
        await self._paginator.aclose()

    async def __aenter__(self) -> _Pages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._paginator.aclose()
