"""A cacheable resource for the MockServer: validators, conditional requests, ``Vary``."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from typing import Any

from aiohttp.web_request import BaseRequest

from resilient_http.testing._reply import HeaderItems, Reply, header_items

__all__ = ["CacheableResource"]


def _http_date(name: str, value: object) -> tuple[str, float]:
    """An HTTP-date header value and its epoch seconds, from a datetime, epoch or str."""
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        when = when.astimezone(timezone.utc).replace(microsecond=0)
        return format_datetime(when, usegmt=True), when.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        epoch = float(math.floor(value))
        return formatdate(epoch, usegmt=True), epoch
    if isinstance(value, str):
        try:
            return value, parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an HTTP-date, got {value!r}") from None
    raise TypeError(f"{name} must be a datetime, epoch seconds or an HTTP-date string, "
                    f"got {value!r}")


def _opt_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {value!r}")
    return value


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2) of an ``If-None-Match`` list against ``etag``."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class CacheableResource:
    """A resource with validators that answers conditional requests with 304.

    Returned by :meth:`MockServer.cacheable`; change it at runtime with :meth:`update`
    (for example a new body and ETag, to see a cache revalidate and get a 200).

    Attributes mirror the arguments of :meth:`MockServer.cacheable`.
    """

    __slots__ = (
        "_body",
        "_cache_control",
        "_etag",
        "_expires",
        "_extra",
        "_last_modified",
        "_lm_epoch",
        "_vary",
        "_vary_names",
        "version",
    )

    def __init__(self, body: bytes | str, **options: Any) -> None:
        self.version = 0
        """How many times :meth:`update` changed the resource."""
        self._body = b""
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._lm_epoch: float | None = None
        self._cache_control: str | None = None
        self._vary: str | None = None
        self._vary_names: tuple[str, ...] = ()
        self._expires: str | timedelta | None = None
        self._extra: HeaderItems = ()
        self._set(body=body, **options)
        self.version = 0

    @property
    def body(self) -> bytes:
        """The base body (before the ``Vary`` echo)."""
        return self._body

    @property
    def etag(self) -> str | None:
        """The ``ETag`` header value, quotes included."""
        return self._etag

    def update(self, **changes: Any) -> None:
        """Change any of ``body``, ``etag``, ``last_modified``, ``cache_control``, ``vary``,
        ``expires``, ``extra_headers``; the others keep their values. Pass ``None`` to
        drop a validator or header."""
        self._set(**changes)

    def _set(self, **changes: Any) -> None:
        unknown = set(changes) - {"body", "etag", "last_modified", "cache_control", "vary",
                                  "expires", "extra_headers"}
        if unknown:
            raise TypeError(f"unknown cacheable option(s): {', '.join(sorted(unknown))}")
        if "body" in changes:
            body = changes["body"]
            if isinstance(body, str):
                body = body.encode("utf-8")
            if not isinstance(body, (bytes, bytearray)):
                raise TypeError(f"body must be bytes or str, got {body!r}")
            self._body = bytes(body)
        if "etag" in changes:
            etag = _opt_str("etag", changes["etag"])
            if etag is not None and not etag.removeprefix("W/").startswith('"'):
                etag = f'"{etag}"'
            self._etag = etag
        if "last_modified" in changes:
            value = changes["last_modified"]
            if value is None:
                self._last_modified, self._lm_epoch = None, None
            else:
                self._last_modified, self._lm_epoch = _http_date("last_modified", value)
        if "cache_control" in changes:
            self._cache_control = _opt_str("cache_control", changes["cache_control"])
        if "vary" in changes:
            self._vary = _opt_str("vary", changes["vary"])
            self._vary_names = tuple(
                n.strip() for n in (self._vary or "").split(",") if n.strip() not in ("", "*")
            )
        if "expires" in changes:
            expires = changes["expires"]
            if isinstance(expires, (datetime, int, float)) and not isinstance(expires, bool):
                expires = _http_date("expires", expires)[0]
            elif expires is not None and not isinstance(expires, (str, timedelta)):
                raise TypeError("expires must be an HTTP-date str, a datetime, epoch seconds "
                                f"or a timedelta from now, got {expires!r}")
            self._expires = expires
        if "extra_headers" in changes:
            self._extra = header_items("extra_headers", changes["extra_headers"])
        self.version += 1

    def respond(self, request: BaseRequest, body: bytes, wall: float) -> Reply:
        headers: list[tuple[str, str]] = []
        payload = self._body
        etag = self._etag
        if self._vary_names:
            variant = "\n".join(
                f"{name.lower()}: {request.headers.get(name, '')}" for name in self._vary_names
            )
            payload = payload + b"\n" + variant.encode("utf-8")
            if etag is not None:
                # Each representation gets its own strong validator, as RFC 9110 requires.
                digest = hashlib.sha1(variant.encode("utf-8")).hexdigest()[:8]
                etag = f'{etag[:-1]}-{digest}"'
        if etag is not None:
            headers.append(("ETag", etag))
        if self._last_modified is not None:
            headers.append(("Last-Modified", self._last_modified))
        if self._cache_control is not None:
            headers.append(("Cache-Control", self._cache_control))
        if self._vary is not None:
            headers.append(("Vary", self._vary))
        if isinstance(self._expires, timedelta):
            headers.append(("Expires", formatdate(wall + self._expires.total_seconds(),
                                                  usegmt=True)))
        elif self._expires is not None:
            headers.append(("Expires", self._expires))
        headers.extend(self._extra)
        if request.method in ("GET", "HEAD") and self._not_modified(request, etag):
            return Reply(304, headers=headers)
        return Reply(200, headers=headers, body=payload)

    def _not_modified(self, request: BaseRequest, etag: str | None) -> bool:
        inm = request.headers.get("If-None-Match")
        if inm is not None:  # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
            return etag is not None and _etag_matches(inm, etag)
        ims = request.headers.get("If-Modified-Since")
        if ims is None or self._lm_epoch is None:
            return False
        try:
            return self._lm_epoch <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
