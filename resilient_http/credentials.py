"""What is a credential: the one rule behind redaction and cache keys.

A header or query parameter *name* is a credential when, lower-cased,

- it contains ``token``, ``key``, ``secret``, ``auth``, ``session``, ``signature``,
  ``credential``, ``password``, ``passwd``, ``jwt`` or ``cookie`` (so ``Authorization``,
  ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-Api-Key``, ``PRIVATE-TOKEN``,
  ``DD-API-KEY``, ``Ocp-Apim-Subscription-Key``, ``X-Vault-Token``, ``AWSAccessKeyId``,
  ``X-Amz-Signature``, ``X-Goog-Credential``, ``session_id``, ``private_key`` …);
- or one of its words is ``sig``, ``pwd``, ``pass`` or ``otp`` (words are split at
  punctuation and at a lower-to-upper case change: ``sig``, ``url_sig``, ``urlSig``; not
  ``signal`` or ``passenger``), or it is ``code`` (an OAuth authorization code);
- or it was registered with :func:`add`.

Matching by substring errs on the side of secrecy: ``X-Monkey`` counts as a credential (its
value is redacted, and a private cache keys by it), a cost paid only by such odd names. The
standard HTTP fields never match (``Accept``, ``Cache-Control``, ``Content-Type``,
``If-None-Match``, ``Keep-Alive``, ``User-Agent`` …), and a few names that hold a "key"
but identify a request, not a caller, are exempt: ``Idempotency-Key``,
``X-Idempotency-Key``, ``Sec-WebSocket-Key``.

The verdict is memoized per name (a bounded table), so the check costs one dictionary look-up
on the request path.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from typing import Any

from resilient_http._validate import show

__all__ = ["is_credential", "add", "registered"]

_STEMS = (
    "token", "key", "secret", "auth", "session", "signature", "credential", "password",
    "passwd", "jwt", "cookie",
)
_WORDS = frozenset({"sig", "pwd", "pass", "otp"})
# Names with a stem that identify a request, not a caller.
_EXEMPT = frozenset({"idempotency-key", "x-idempotency-key", "sec-websocket-key"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 token)

_added: frozenset[str] = frozenset()
_lock = threading.Lock()
_memo: dict[str, bool] = {}
# The names of _memo judged not to be credentials: owner_of's quick scan is one C call
# (set.issuperset over the headers: ~160 ns for four names, where a map of _memo.get over
# them took ~450 ns).
_safe: set[str] = set()
_MEMO_SIZE = 2048  # names remembered; the table is emptied when full
_MEMO_NAME = 256  # longer names are judged every time, never remembered


def _judge(name: str) -> bool:
    low = name.lower()
    if low in _added or low == "code":
        return True
    if low in _EXEMPT:
        return False
    if any(stem in low for stem in _STEMS):
        return True
    return not _WORDS.isdisjoint(_SPLIT.split(_CAMEL.sub(" ", name).lower()))


def is_credential(name: str) -> bool:
    """Whether a header or query parameter called ``name`` carries a credential (the rule
    is in this module's docstring). Case-insensitive but for the camelCase word boundary;
    never raises on a ``str``."""
    verdict = _memo.get(name)
    if verdict is None:
        verdict = _judge(name)
        if len(name) <= _MEMO_NAME:
            if len(_memo) >= _MEMO_SIZE:
                _memo.clear()
                _safe.clear()
            _memo[name] = verdict
            if not verdict:
                _safe.add(name)
    return verdict


def add(*names: str) -> None:
    """Register more credential names, for this process (case-insensitive): their values
    are redacted in logs and events, kept out of cross-origin pagination requests, and
    hashed into a private cache's key. E.g. ``rh.credentials.add("X-Tenant")``.

    Raises:
        TypeError: a name is not a ``str``.
        ValueError: a name is empty.
    """
    global _added
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"names must be str, got {type(name).__name__} {show(name)}")
        if not name.strip():
            raise ValueError(f"names must be non-empty header or parameter names, got {show(name)}")
    with _lock:
        _added = _added | {n.strip().lower() for n in names}
        _memo.clear()
        _safe.clear()


def registered() -> frozenset[str]:
    """The names added with :func:`add` (lower case)."""
    return _added


# ---------------------------------------------------------------------- cache owners


def owner_of(headers: Any, key_headers: frozenset[str], shared: bool) -> str | None:
    """Who a request's cached response belongs to, from its headers (``CIMultiDict``):
    ``None`` for an anonymous request without any of ``key_headers`` (lower case).

    Otherwise a short text, never the values themselves: ``"c"`` + a digest of every
    credential header and every ``key_headers`` field for a private cache; ``"s"`` (+ a
    digest of the ``key_headers`` fields) for a request with credentials in a shared cache,
    where RFC 9111 §3.5 decides what they may share; ``"k"`` + a digest when only
    ``key_headers`` fields are present. :func:`credentialed` tells the first two from the
    third. Cookies and ``auth=`` (URL user info included) are headers by then: aiohttp
    merges the session's cookie jar and the request's cookies into ``Cookie``, and turns
    ``auth=`` into ``Authorization``, before the middlewares run.
    """
    # Quick scan in C: every name already judged not to be a credential.
    if _safe.issuperset(headers) and (
        not key_headers or key_headers.isdisjoint(k.lower() for k in headers)
    ):
        return None
    found = False
    picked = []
    for name, value in headers.items():
        if is_credential(name):
            found = True
            if not shared:
                picked.append(f"{name.lower()}\0{value}\0")
        elif key_headers and name.lower() in key_headers:
            picked.append(f"{name.lower()}\0{value}\0")
    if not picked and not found:
        return None
    picked.sort()
    digest = hashlib.blake2b("".join(picked).encode("utf-8", "surrogateescape"), digest_size=16)
    return ("s" if shared else "c") + digest.hexdigest() if found else "k" + digest.hexdigest()


def credentialed(owner: str | None) -> bool:
    """Whether an :func:`owner_of` says the request carried credentials."""
    return owner is not None and owner[0] != "k"


def header_names(name: str, value: Iterable[Any] | None) -> frozenset[str]:
    """Validate ``key_headers=`` (header names) and return them lower-cased."""
    if value is None:
        return frozenset()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence of header names, got {show(value)}")
    out = set()
    for item in value:
        if not isinstance(item, str):
            raise TypeError(
                f"{name} must hold header names (str), got {type(item).__name__} {show(item)}"
            )
        if not item or not _TOKEN.fullmatch(item):
            raise ValueError(f"{name} must hold valid header names, got {show(item)}")
        out.add(item.lower())
    return frozenset(out)

