"""Pagination strategies: how to find the next page of a collection.

A strategy is a small object with one method, ``next(page)``, that looks at the page just
fetched and says where the next one is:

- ``None``: the collection is complete;
- a ``str`` or ``yarl.URL``: the next page's URL (relative URLs are resolved against the page's
  URL; another origin is refused unless ``paginate(allow_cross_origin=True)``);
- a mapping of query parameters: merged into the first request's URL (cursor, token, offset,
  page number), replacing parameters of the same name.

A strategy may also have ``first_params()`` (query parameters of the first request, e.g. the
page size) and an ``items`` attribute (where the items are in a page's body, see
:func:`paginate`). Writing your own::

    class SlackCursor:
        def next(self, page):
            cursor = page.body.get("response_metadata", {}).get("next_cursor")
            return {"cursor": cursor} if cursor else None

Built in: :class:`LinkHeader` (RFC 8288 ``Link: <…>; rel="next"``), :class:`BodyLink` (a next
URL in the body, e.g. JSON:API ``links.next``), :class:`Cursor` (Stripe/OpenAI ``has_more`` +
the last item's id, Slack/Twitter ``next_cursor``), :class:`PageToken` (Google AIP-158),
:class:`Offset` (``offset``/``limit``) and :class:`PageNumber` (``page``/``per_page``).
Ready-made ones for well-known APIs are in :mod:`resilient_http.presets`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from multidict import CIMultiDictProxy
from yarl import URL

from resilient_http._link import find_rel
from resilient_http._validate import positive_int, show

__all__ = [
    "Page",
    "Strategy",
    "ItemsSpec",
    "LinkHeader",
    "BodyLink",
    "Cursor",
    "PageToken",
    "Offset",
    "PageNumber",
]

NextPage = str | URL | Mapping[str, Any] | None
"""What ``Strategy.next`` returns."""

ItemsSpec = str | Sequence[str] | Callable[[Any], Any] | None
"""Where the items are in a page's body: a dotted path (``"data"``, ``"result.items"``), a
sequence of keys (for keys containing dots, ``("@odata.nextLink",)``), a callable
``body -> list``, or ``None`` (the body itself when it is a list, else its only list-valued
field)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One fetched page.

    Attributes:
        number: the page's position, 1 for the first.
        url: the URL the page was fetched from (after redirects).
        status: the response status.
        headers: the response headers.
        body: the decoded JSON body.
        items: the page's items, taken from ``body`` (see ``paginate(items=...)``).
    """

    number: int
    url: URL
    status: int
    headers: CIMultiDictProxy[str]
    body: Any
    items: Sequence[Any]


@runtime_checkable
class Strategy(Protocol):
    """What :func:`paginate` needs from a strategy: ``next(page)`` (see the module
    docstring). ``first_params()`` and ``items`` are optional."""

    def next(self, page: Page) -> NextPage:
        """Where the page after ``page`` is, or ``None`` when ``page`` is the last."""
        ...


MISSING: Any = object()


def path_of(name: str, value: str | Sequence[str]) -> tuple[str, ...]:
    """A body path from a dotted string or a sequence of keys, validated."""
    if isinstance(value, str):
        keys = tuple(value.split("."))
    elif isinstance(value, Sequence) and all(isinstance(k, str) for k in value):
        keys = tuple(value)
    else:
        raise TypeError(
            f"{name} must be a dotted path like 'meta.next' or a sequence of keys, got "
            f"{show(value)}"
        )
    if not keys or any(not k for k in keys):
        raise ValueError(f"{name} must name at least one non-empty key, got {show(value)}")
    return keys


def get_path(body: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested mappings, or :data:`MISSING`."""
    for key in path:
        if not isinstance(body, Mapping) or key not in body:
            return MISSING
        body = body[key]
    return body


def _size(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def _param(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty query parameter name, got {show(value)}")
    return value


def _items(value: Any) -> ItemsSpec:
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    path_of("items", value)
    return value  # type: ignore[no-any-return]


class _Base:
    """Shared: page size mapped to the API's own parameter, and the items location."""

    __slots__ = ("page_size", "size_param", "items")

    def __init__(self, page_size: int | None, size_param: str, items: ItemsSpec) -> None:
        self.page_size = _size("page_size", page_size)
        self.size_param = _param("size_param", size_param)
        self.items = _items(items)

    def first_params(self) -> dict[str, Any]:
        """Query parameters of the first request (the page size, when set)."""
        return {} if self.page_size is None else {self.size_param: self.page_size}

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for cls in type(self).__mro__
            for name in getattr(cls, "__slots__", ())
        )
        return f"{type(self).__name__}({fields})"


class LinkHeader(_Base):
    """Follow the RFC 8288 ``Link`` header's ``rel="next"`` (GitHub, GitLab, many REST APIs).

    Relative links are resolved against the page's URL. The collection ends when a page has
    no ``next`` link.

    Args:
        rel: the relation to follow. Default ``"next"``.
        page_size: items per page, sent on the first request as ``size_param`` (the next links
            carry it on). Default ``None`` (the API's default).
        size_param: the API's page-size parameter. Default ``"per_page"`` (GitHub).
        items: where the items are in the body (see ``paginate``). Default ``None``: the body
            itself when it is a list, else its only list-valued field.
    """

    __slots__ = ("rel",)

    def __init__(
        self,
        *,
        rel: str = "next",
        page_size: int | None = None,
        size_param: str = "per_page",
        items: ItemsSpec = None,
    ) -> None:
        super().__init__(page_size, size_param, items)
        if not isinstance(rel, str) or not rel or any(c in rel for c in ' \t,;"'):
            raise ValueError(f"rel must be one link relation type like 'next', got {show(rel)}")
        self.rel = rel.lower()

    def next(self, page: Page) -> NextPage:
        """The target of the ``Link`` header's ``rel`` link, or ``None``."""
        values = page.headers.getall("Link", ())
        return find_rel(values, self.rel) if values else None


class BodyLink(_Base):
    """Follow a next-page URL found in the body: JSON:API ``links.next``, Django REST
    framework ``next``, Microsoft Graph ``@odata.nextLink``, Facebook ``paging.next``.

    The collection ends when the field is missing, ``null`` or empty. A JSON:API link object
    (``{"href": "…"}``) is accepted too.

    Args:
        field: the dotted path of the link in the body (a sequence of keys when a key contains
            a dot: ``("@odata.nextLink",)``). Default ``"links.next"`` (JSON:API).
        page_size: items per page, sent on the first request. Default ``None``.
        size_param: the page-size parameter. Default ``"page[size]"`` (JSON:API).
        items: where the items are. Default ``None`` (see ``paginate``).
    """

    __slots__ = ("field", "_path")

    def __init__(
        self,
        field: str | Sequence[str] = "links.next",
        *,
        page_size: int | None = None,
        size_param: str = "page[size]",
        items: ItemsSpec = None,
    ) -> None:
        super().__init__(page_size, size_param, items)
        self._path = path_of("field", field)
        self.field = field

    def next(self, page: Page) -> NextPage:
        """The URL at ``field``, or ``None``."""
        link = get_path(page.body, self._path)
        if isinstance(link, Mapping):
            link = link.get("href")
        if link is MISSING or link is None or link == "":
            return None
        if not isinstance(link, str):
            raise ValueError(f"{'.'.join(self._path)} is {type(link).__name__}, not a URL")
        return link


class Cursor(_Base):
    """Send a cursor from each page as a query parameter of the next request.

    The cursor is either a field of the body (``field=``, e.g. Slack's
    ``response_metadata.next_cursor``) or a key of the page's last item (``item_field=``,
    e.g. Stripe's ``starting_after=<id of the last object>``). With ``has_more=`` the body's
    flag says whether more pages follow (Stripe, OpenAI); without it, a missing, ``null`` or
    empty cursor ends the collection.

    Args:
        param: the query parameter that carries the cursor. Default ``"cursor"``.
        field: dotted path of the next cursor in the body. Default ``"next_cursor"`` when
            ``item_field`` is not given.
        item_field: key of the last item whose value is the cursor (exclusive with ``field``).
        has_more: dotted path of a boolean "more pages" flag. Default ``None``.
        page_size: items per page, sent as ``size_param``. Default ``None``.
        size_param: the page-size parameter. Default ``"limit"``.
        items: where the items are. Default ``None`` (see ``paginate``).
    """

    __slots__ = ("param", "field", "item_field", "has_more", "_field", "_has_more")

    def __init__(
        self,
        param: str = "cursor",
        *,
        field: str | Sequence[str] | None = None,
        item_field: str | None = None,
        has_more: str | Sequence[str] | None = None,
        page_size: int | None = None,
        size_param: str = "limit",
        items: ItemsSpec = None,
    ) -> None:
        super().__init__(page_size, size_param, items)
        self.param = _param("param", param)
        if field is not None and item_field is not None:
            raise ValueError(
                f"give field= (a cursor in the body) or item_field= (a key of the last item), "
                f"not both: field={show(field)}, item_field={show(item_field)}"
            )
        if item_field is not None and (not isinstance(item_field, str) or not item_field):
            raise TypeError(f"item_field must be a non-empty key, got {show(item_field)}")
        if field is None and item_field is None:
            field = "next_cursor"
        self.field = field
        self.item_field = item_field
        self._field = None if field is None else path_of("field", field)
        self.has_more = has_more
        self._has_more = None if has_more is None else path_of("has_more", has_more)

    def next(self, page: Page) -> NextPage:
        """``{param: cursor}``, or ``None`` at the end."""
        if self._has_more is not None:
            more = get_path(page.body, self._has_more)
            if more is MISSING:
                raise ValueError(f"no {'.'.join(self._has_more)!r} field")
            if not isinstance(more, bool):
                raise ValueError(f"{'.'.join(self._has_more)!r} is {show(more)}, not true/false")
            if not more:
                return None
        if self._field is not None:
            cursor = get_path(page.body, self._field)
            if cursor is MISSING or cursor is None or cursor == "":
                if self._has_more is not None:
                    raise ValueError(f"has_more is true but {'.'.join(self._field)!r} is empty")
                return None
        else:
            if not page.items:
                if self._has_more is not None:
                    raise ValueError("has_more is true but the page has no items")
                return None
            last = page.items[-1]
            if not isinstance(last, Mapping) or self.item_field not in last:
                raise ValueError(f"the last item has no {show(self.item_field)} key")
            cursor = last[self.item_field]
        if not isinstance(cursor, (str, int)) or isinstance(cursor, bool):
            raise ValueError(f"cursor {show(cursor)} is not a string or an integer")
        return {self.param: cursor}


class PageToken(_Base):
    """Google's AIP-158 page tokens: ``nextPageToken`` in the body → ``pageToken`` on the next
    request. Only a missing or empty token ends the collection (a short, or even empty, page
    does not: the API may return fewer items than asked).

    Args:
        token_field: dotted path of the next token. Default ``"nextPageToken"``.
        param: the request parameter. Default ``"pageToken"``.
        page_size: items per page. Default ``None``.
        size_param: the page-size parameter. Default ``"pageSize"`` (older Google APIs:
            ``"maxResults"``).
        items: where the items are. Default ``None``: the body's only list-valued field
            (AIP-158 responses have one repeated field).
    """

    __slots__ = ("token_field", "param", "_path")

    def __init__(
        self,
        *,
        token_field: str | Sequence[str] = "nextPageToken",
        param: str = "pageToken",
        page_size: int | None = None,
        size_param: str = "pageSize",
        items: ItemsSpec = None,
    ) -> None:
        super().__init__(page_size, size_param, items)
        self._path = path_of("token_field", token_field)
        self.token_field = token_field
        self.param = _param("param", param)

    def next(self, page: Page) -> NextPage:
        """``{param: token}``, or ``None`` when the token is missing or empty."""
        token = get_path(page.body, self._path)
        if token is MISSING or token is None or token == "":
            return None
        if not isinstance(token, str):
            raise ValueError(f"{'.'.join(self._path)!r} is {show(token)}, not a string")
        return {self.param: token}


class Offset(_Base):
    """``offset``/``limit`` pagination. The next offset is the current one plus the number of
    items received (not the limit: servers often cap the limit). The collection ends on an
    empty page, or when the offset reaches the body's ``total`` (if ``total=`` is given).

    Args:
        offset_param: the offset parameter. Default ``"offset"``.
        start: the first offset. Default 0.
        total: dotted path of the total item count in the body. Default ``None``.
        page_size: items per page, sent as ``size_param``. Default ``None``.
        size_param: the limit parameter. Default ``"limit"``.
        items: where the items are. Default ``None`` (see ``paginate``).
    """

    __slots__ = ("offset_param", "start", "total", "_total")

    def __init__(
        self,
        *,
        offset_param: str = "offset",
        start: int = 0,
        total: str | Sequence[str] | None = None,
        page_size: int | None = None,
        size_param: str = "limit",
        items: ItemsSpec = None,
    ) -> None:
        super().__init__(page_size, size_param, items)
        self.offset_param = _param("offset_param", offset_param)
        self.start = positive_int("start", start, minimum=0)
        self.total = total
        self._total = None if total is None else path_of("total", total)

    def first_params(self) -> dict[str, Any]:
        """The start offset and the page size."""
        return {self.offset_param: self.start, **super().first_params()}

    def next(self, page: Page) -> NextPage:
        """``{offset_param: offset + len(items)}``, or ``None`` at the end."""
        if not page.items:
            return None
        raw = page.url.query.get(self.offset_param)
        try:
            offset = self.start if raw is None else int(raw)
        except ValueError:
            raise ValueError(f"the page's {show(self.offset_param)} is {show(raw)}") from None
        nxt = offset + len(page.items)
        if self._total is not None:
            total = get_path(page.body, self._total)
            if not isinstance(total, int) or isinstance(total, bool):
                raise ValueError(f"{'.'.join(self._total)!r} is {show(total)}, not an integer")
            if nxt >= total:
                return None
        return {self.offset_param: nxt}


class PageNumber(_Base):
    """``page``/``per_page`` pagination: asks for page ``start``, ``start + 1``, … and stops on
    an empty page (or after ``total_pages`` from the body, if given).

    Args:
        param: the page-number parameter. Default ``"page"``.
        start: the first page number. Default 1.
        total_pages: dotted path of the page count in the body. Default ``None``.
        page_size: items per page, sent as ``size_param``. Default ``None``.
        size_param: the page-size parameter. Default ``"per_page"``.
        items: where the items are. Default ``None`` (see ``paginate``).
    """

    __slots__ = ("param", "start", "total_pages", "_total")

    def __init__(
        self,
        *,
        param: str = "page",
        start: int = 1,
        total_pages: str | Sequence[str] | None = None,
        page_size: int | None = None,
        size_param: str = "per_page",
        items: ItemsSpec = None,
    ) -> None:
        super().__init__(page_size, size_param, items)
        self.param = _param("param", param)
        self.start = positive_int("start", start, minimum=0)
        self.total_pages = total_pages
        self._total = None if total_pages is None else path_of("total_pages", total_pages)

    def first_params(self) -> dict[str, Any]:
        """The first page number and the page size."""
        return {self.param: self.start, **super().first_params()}

    def next(self, page: Page) -> NextPage:
        """``{param: current + 1}``, or ``None`` at the end."""
        if not page.items:
            return None
        raw = page.url.query.get(self.param)
        try:
            current = self.start if raw is None else int(raw)
        except ValueError:
            raise ValueError(f"the page's {show(self.param)} is {show(raw)}") from None
        if self._total is not None:
            total = get_path(page.body, self._total)
            if not isinstance(total, int) or isinstance(total, bool):
                raise ValueError(f"{'.'.join(self._total)!r} is {show(total)}, not an integer")
            if current - self.start + 1 >= total:
                return None
        return {self.param: current + 1}
