"""Redaction of URLs and headers for logs, events and error messages.

It follows the OpenTelemetry HTTP conventions: user info in a URL becomes
``REDACTED:REDACTED@``, the value of every credential query parameter (the rule of
:mod:`resilient_http.credentials`: ``AWSAccessKeyId``, ``Signature``, ``sig``,
``X-Amz-Signature``, ``X-Goog-Signature``, ``api_key``, ``access_token`` …) becomes
``REDACTED`` while its name stays, and the fragment is dropped. The URL is redacted as text,
so what is shown is what was given, and no input makes it raise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

from yarl import URL

from resilient_http.credentials import is_credential

__all__ = ["REDACTED", "redact_url", "redact_headers"]

REDACTED = "REDACTED"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_SEPARATORS = re.compile(r"([&;])")


def redact_url(url: URL | str) -> str:
    """``url`` as text with its user info, credential query values and fragment hidden
    (see the module docstring). Accepts any value and never raises: what cannot even be
    turned into text is shown as ``REDACTED``."""
    try:
        text = url if type(url) is str else str(url)
        return _redact(text)
    except Exception:  # a hostile __str__, or a bug here: never fail the caller's request
        return REDACTED


def _redact(text: str) -> str:
    text = text.partition("#")[0]
    head, mark, query = text.partition("?")
    scheme = _SCHEME.match(head)
    start = scheme.end() if scheme else 0
    if head.startswith("//", start):
        start += 2
        end = head.find("/", start)
        authority = head[start:] if end < 0 else head[start:end]
        at = authority.rfind("@")
        if at >= 0:
            head = f"{head[:start]}REDACTED:REDACTED@{head[start + at + 1:]}"
    if not query:
        return head + mark
    parts = _SEPARATORS.split(query)
    for i in range(0, len(parts), 2):
        name, eq, _ = parts[i].partition("=")
        if eq and is_credential(unquote_plus(name)):
            parts[i] = f"{name}={REDACTED}"
    return f"{head}?{''.join(parts)}"


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers as a plain dict with the values of credential headers replaced by
    ``REDACTED`` (multi-valued ones joined with ``", "``)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for k, v in items:
        value = REDACTED if is_credential(k) else v
        out[k] = f"{out[k]}, {value}" if k in out else value
    return out
