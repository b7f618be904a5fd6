"""``FieldMask``: ask the server for only the fields you use (partial responses).

Three wire styles:

- ``style="query"`` → ``?fields=id,name`` (Google partial responses and AIP-161 masks, also
  ``param="$select"`` for Microsoft Graph/OData). Nested paths ``a.b`` / ``a/b`` and Google's
  sub-selections ``items(id,name)`` are allowed.
- ``style="header"`` → ``X-Goog-FieldMask: id,name`` (Google's gRPC-transcoded APIs, e.g.
  Places API v1).
- ``style="jsonapi"`` → ``fields[articles]=title,body&fields[people]=name`` (JSON:API sparse
  fieldsets), from a mapping of resource type to fields.

Place it outermost (``standard(fields=...)`` does): it changes the URL, so a ``Cache`` inside
it keys on the masked URL and never serves a full response for a masked request or the
other way round.

Values are percent-encoded by yarl, so a field name can never add a parameter: ``a&admin=1``
travels as ``fields=a%26admin%3D1``. Field names are also checked against the grammar above
at construction (``validate=False`` turns that off for exotic names; the encoding still
applies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from yarl import URL

from resilient_http._fresh import config_of, fresh_reduce
from resilient_http._middleware import REQUEST, Call, Layer, Step
from resilient_http._validate import show
from resilient_http.events import Emitter, EventHook, logger

__all__ = ["FieldMask"]

_STYLES = ("query", "header", "jsonapi")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_HEADER_CHARS = _NAME_CHARS | frozenset("!#$%&'*+.^`|~")
_DEFAULT: Any = object()
_EMPTY = URL("http://fieldmask.invalid/")
_UNSEEN: Any = object()
_MAX_DEPTH = 32
"""How deep ``items(a(b(...)))`` sub-selections may nest."""
_MASKS_KEPT = 256
"""Masked URLs a FieldMask remembers; past this many it forgets them all and starts again."""


def _check_expr(expr: str) -> None:
    """Validate a field list: ``field ("," field)*`` where ``field = path ["(" list ")"]``
    and ``path = name (("." | "/") name)*``, ``name = [A-Za-z0-9_-]+ | "*"``."""
    n = len(expr)

    def fail(i: int, what: str) -> ValueError:
        return ValueError(
            f"fields: {expr!r} is not a valid field list ({what} at position {i}); names are "
            f"letters, digits, '_' and '-', nested with '.' or '/', sub-selected with "
            f"'items(a,b)', separated by ','; pass validate=False for other names"
        )

    def name(i: int) -> int:
        if i < n and expr[i] == "*":
            return i + 1
        j = i
        while j < n and expr[j] in _NAME_CHARS:
            j += 1
        if j == i:
            raise fail(i, "a field name expected")
        return j

    def field_list(i: int, depth: int) -> int:
        while True:
            i = name(i)
            while i < n and expr[i] in "./":
                i = name(i + 1)
            if i < n and expr[i] == "(":
                if depth >= _MAX_DEPTH:
                    raise fail(i, f"nested deeper than {_MAX_DEPTH} levels")
                i = field_list(i + 1, depth + 1)
                if i >= n or expr[i] != ")":
                    raise fail(i, "')' expected")
                i += 1
            if i < n and expr[i] == ",":
                i += 1
                continue
            if depth == 0 and i < n:
                raise fail(i, f"unexpected {expr[i]!r}")
            return i

    if field_list(0, 0) != n:  # pragma: no cover - field_list consumes all at depth 0
        raise fail(n, "trailing text")


def _check_loose(what: str, value: str) -> None:
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(
            f"{what} must be non-empty text without control characters, got {show(value)}"
        )


def _field_list(fields: Any, validate: bool) -> str:
    """The wire value (``a,b(c)``) of ``fields`` given as a str or a sequence of str."""
    if isinstance(fields, str):
        parts = [fields]
    elif isinstance(fields, Sequence) or (
        not isinstance(fields, Mapping) and hasattr(fields, "__iter__")
    ):
        parts = list(fields)
        if not parts:
            raise ValueError("fields must name at least one field, got an empty sequence")
    else:
        raise TypeError(
            f"fields must be a sequence of field names (or one 'a,b(c)' string), got "
            f"{type(fields).__name__} {show(fields)}"
        )
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(
                f"fields: field names must be str, got {type(part).__name__} {show(part)}"
            )
        if validate:
            _check_expr(part)
        else:
            _check_loose("fields: a field name", part)
    return ",".join(parts)


def _jsonapi_pairs(fields: Any, param: str, validate: bool) -> tuple[tuple[str, str], ...]:
    if not isinstance(fields, Mapping) or not fields:
        raise TypeError(
            f"style='jsonapi' needs fields as a non-empty mapping of resource type to field "
            f"names, e.g. {{'articles': ['title', 'body']}}, got {show(fields)}"
        )
    pairs = []
    for rtype, names in fields.items():
        if not isinstance(rtype, str):
            raise TypeError(f"fields: resource types must be str, got {show(rtype)}")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, Sequence) or not all(isinstance(f, str) for f in names):
            raise TypeError(f"fields of {show(rtype)} must be a sequence of str, got {show(names)}")
        for item in (rtype, *names):
            if validate and (not item or not set(item) <= _NAME_CHARS):
                raise ValueError(
                    f"fields: {show(item)} (type {show(rtype)}) is not a valid JSON:API member "
                    f"name (letters, digits, '_' and '-'); pass validate=False for other names"
                )
            _check_loose("fields: a JSON:API name", item)
        # An empty list is meaningful in JSON:API: fields[people]= asks for no fields.
        pairs.append((f"{param}[{rtype}]", ",".join(names)))
    return tuple(pairs)


def _mask_url(url: URL, pairs: tuple[tuple[str, str], ...]) -> URL | None:
    """``url`` with the encoded ``name=value`` pieces of ``pairs`` appended to its query, each
    unless the query already has that name; ``None`` if it has them all. The request's own
    encoded query is kept byte for byte."""
    raw = url.raw_query_string
    query = url.query if raw else None  # an empty query has no names: nothing to parse
    added = False
    for name, piece in pairs:
        if query is None or name not in query:
            raw = f"{raw}&{piece}" if raw else piece
            added = True
    if not added:
        return None
    return URL.build(
        scheme=url.scheme,
        authority=url.raw_authority,
        path=url.raw_path,
        query_string=raw,
        encoded=True,
    )


def _matcher(match: Any) -> Callable[[URL], bool] | None:
    if match is None:
        return None
    if callable(match):
        return match  # type: ignore[no-any-return]
    specs = [match] if isinstance(match, str) else match
    if not isinstance(specs, Sequence) or not specs or not all(isinstance(s, str) for s in specs):
        raise TypeError(
            f"match must be a host ('api.example.com', '*.googleapis.com'), a URL prefix "
            f"('https://api.example.com/v1/'), a sequence of those or a callable(URL) -> bool, "
            f"got {show(match)}"
        )
    hosts: set[str] = set()
    suffixes: list[str] = []
    prefixes: list[tuple[tuple[str, str | None, int | None], str]] = []
    for spec in specs:
        if "://" in spec:
            u = URL(spec)
            if not u.host:
                raise ValueError(f"match: {show(spec)} has no host")
            path = u.path if u.path.endswith("/") else u.path + "/"
            prefixes.append(((u.scheme, u.host, u.port), path))
        elif spec.startswith("*."):
            suffixes.append(spec[1:].lower())
        elif spec and "/" not in spec:
            hosts.add(spec.lower())
        else:
            raise ValueError(f"match: {show(spec)} is neither a host nor an absolute URL prefix")

    def matches(url: URL) -> bool:
        host = (url.host or "").lower()
        if host in hosts or any(host.endswith(s) for s in suffixes):
            return True
        if prefixes:
            origin = (url.scheme, url.host, url.port)
            path = url.path if url.path.endswith("/") else url.path + "/"
            return any(o == origin and path.startswith(p) for o, p in prefixes)
        return False

    return matches


class FieldMask(Layer):
    """Add a field selection to every matching request.

    ::

        mask = rh.FieldMask(["files(id,name,mimeType)", "nextPageToken"],
                            match="www.googleapis.com")
        session = aiohttp.ClientSession(middlewares=(mask,))

    Args:
        fields: for ``"query"`` and ``"header"``, a sequence of field names or paths
            (``"id"``, ``"owner.login"``, ``"items(id,name)"``), or one ready-made list
            ``"id,name"``; for ``"jsonapi"``, a mapping of resource type to field names.
            Validated here (see the module docstring).
        style: ``"query"`` (default), ``"header"`` or ``"jsonapi"``.
        param: the query parameter, or for ``style="header"`` the header name. Default
            ``"fields"`` (query, jsonapi: ``fields[TYPE]``) or ``"X-Goog-FieldMask"``.
        match: which requests get the mask: ``None`` (default, all), a host
            (``"api.example.com"``), a wildcard host (``"*.googleapis.com"``), an absolute URL
            prefix (``"https://api.example.com/v2/"``, matched on whole path segments), a
            sequence of those, or a callable ``(yarl.URL) -> bool``.
        validate: check field names against the grammar. Default ``True``.
        on_event: hook(s) receiving ``fieldmask.applied`` / ``fieldmask.kept`` events.

    A request that already carries the parameter (or header; for JSON:API, the
    ``fields[TYPE]`` of that type) is left alone: the request's own choice wins, nothing is
    merged. For one block of code, :meth:`override` replaces the fields and :meth:`disabled`
    turns the mask off. Only for HTTP requests: ``@resilient(FieldMask(...))`` raises
    ``TypeError``.

    Pickling or copying it (``copy.copy``, ``copy.deepcopy``) gives a new layer with the same
    configuration and none of the state (see the README's "Pickling and copying").
    """

    __slots__ = ("_config", "fields", "style", "param", "match", "validate", "_value", "_var",
                 "_match", "_events", "_masks", "_memo")
    requests_only: ClassVar[bool] = True

    __reduce__ = fresh_reduce

    def __init__(
        self,
        fields: Sequence[str] | str | Mapping[str, Sequence[str]],
        *,
        style: str = "query",
        param: str | None = None,
        match: str | Sequence[str] | Callable[[URL], bool] | None = None,
        validate: bool = True,
        on_event: EventHook | Sequence[EventHook] | None = None,
    ) -> None:
        self._config = config_of(locals())
        if style not in _STYLES:
            raise ValueError(
                f"style must be one of {', '.join(map(repr, _STYLES))}, got {show(style)}"
            )
        if not isinstance(validate, bool):
            raise TypeError(f"validate must be a bool, got {show(validate)}")
        if param is None:
            param = "X-Goog-FieldMask" if style == "header" else "fields"
        if not isinstance(param, str) or not param:
            raise TypeError(f"param must be a non-empty str, got {show(param)}")
        if style == "header" and not set(param) <= _HEADER_CHARS:
            raise ValueError(
                f"param must be a valid header name for style='header', got {show(param)}"
            )
        if style != "header":
            _check_loose("param", param)
        self.style = style
        self.param = param
        self.validate = validate
        if isinstance(fields, Mapping):
            fields = dict(fields)
        elif not isinstance(fields, str) and hasattr(fields, "__iter__"):
            fields = list(fields)
        self._value = self._compile(fields)
        # The masked URL of each URL seen with the configured fields (None: left as is), and
        # (URL, masked URL) of the last request.
        self._masks: dict[URL, URL | None] = {}
        self._memo: tuple[Any, Any] = (None, None)
        self.fields: Any = fields
        """The fields as given (a copy)."""
        self.match = match
        self._match = _matcher(match)
        self._var: ContextVar[Any] = ContextVar(f"FieldMask-{id(self):x}", default=_DEFAULT)
        self._events = Emitter("FieldMask", on_event)

    def _compile(self, fields: Any) -> Any:
        """What ``enter`` adds: the header value, or ``(name, encoded "name=value")`` pairs
        for the query (encoded once here, by yarl, so nothing is re-encoded per request)."""
        if self.style == "jsonapi":
            pairs = _jsonapi_pairs(fields, self.param, self.validate)
        elif isinstance(fields, Mapping):
            raise TypeError(
                f"a mapping of fields is for style='jsonapi'; style={show(self.style)} takes a "
                f"sequence of field names, got {show(fields)}"
            )
        else:
            value = _field_list(fields, self.validate)
            if self.style == "header":
                return value
            pairs = ((self.param, value),)
        return tuple(
            (name, _EMPTY.extend_query(((name, v),)).raw_query_string) for name, v in pairs
        )

    @contextmanager
    def override(self, fields: Any) -> Iterator[None]:
        """Within the block (and tasks started in it), send ``fields`` instead; validated like
        the constructor's. ``fields=None`` is the same as :meth:`disabled`."""
        value = None if fields is None else self._compile(fields)
        token = self._var.set(value)
        try:
            yield
        finally:
            self._var.reset(token)

    def disabled(self) -> Any:
        """Within the block (and tasks started in it), send no mask."""
        return self.override(None)

    def enter(self, call: Call, i: int) -> Step:
        request = call[REQUEST]
        url: URL = request.url
        if self._match is not None and not self._match(url):
            return None
        value = self._var.get()
        if value is None:  # disabled()
            return None
        if self.style == "header":
            headers = request.headers
            if self.param in headers:
                self._kept(request, url)
                return None
            headers[self.param] = self._value if value is _DEFAULT else value
        else:
            if value is not _DEFAULT:  # override()
                masked = _mask_url(url, value)
            else:
                # The configured fields: the masked URL of each URL is remembered, as a rebuild
                # costs ~8k instructions. yarl hands out one URL object per URL string, so
                # the same URL as the request before is found by identity (~150 instructions),
                # any other one seen lately by a dict lookup (~2k: URL.__hash__ is Python).
                memo = self._memo
                if memo[0] is url:
                    masked = memo[1]
                else:
                    masked = self._mask_remembered(url)
                    self._memo = (url, masked)
            if masked is None:
                self._kept(request, url)
                return None
            request.url = masked
        if self._events.hooks or logger.isEnabledFor(logging.DEBUG):
            self._events.emit(
                "fieldmask.applied", request.method, request.url, style=self.style
            )
        return None

    def _mask_remembered(self, url: URL) -> URL | None:
        """:func:`_mask_url` with the configured fields, remembered for the last few hundred
        URLs."""
        masks = self._masks
        masked = masks.get(url, _UNSEEN)
        if masked is _UNSEEN:
            masked = _mask_url(url, self._value)
            if len(masks) >= _MASKS_KEPT:
                masks.clear()
            masks[url] = masked
        return masked  # type: ignore[no-any-return]

    def _kept(self, request: Any, url: URL) -> None:
        if self._events.hooks or logger.isEnabledFor(logging.DEBUG):
            self._events.emit("fieldmask.kept", request.method, url, reason="already set")

    def __repr__(self) -> str:
        extra = "" if self.style == "query" else f", style={self.style!r}"
        if self.match is not None:
            extra += f", match={self.match!r}"
        return f"FieldMask({self.fields!r}{extra})"
