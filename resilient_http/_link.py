"""RFC 8288 ``Link`` header parsing (pure, no I/O).

Grammar (RFC 8288 §3, with RFC 9110 list and quoted-string rules)::

    Link       = #link-value
    link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
    link-param = token BWS [ "=" BWS ( token / quoted-string ) ]

The parser is lenient the way browsers are: a malformed link-value is skipped up to the next
top-level comma and the others still count; it never raises on any input. Commas inside
``<…>`` and inside quoted strings do not split links. Parameter names are case-insensitive;
only the first occurrence of a parameter counts (§3.3 says so for ``rel``); relation types
are compared case-insensitively (§2.1.1), so ``rel`` values are lower-cased.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Link", "parse_link_header", "find_rel"]

_WS = " \t"
_TOKEN_STOP = frozenset(' \t;,="<>')


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a ``Link`` header.

    Attributes:
        target: the URI reference between ``<`` and ``>``, as written (maybe relative).
        rel: the relation types, lower-cased (``rel="next last"`` → ``("next", "last")``).
        params: every other parameter, names lower-cased, first occurrence wins.
    """

    target: str
    rel: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)


def _skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _skip_to_comma(s: str, i: int) -> int:
    """Index just past the next top-level comma (respecting quotes and <…>), or len(s)."""
    n = len(s)
    while i < n:
        c = s[i]
        if c == ",":
            return i + 1
        if c == '"':
            i = _quoted(s, i)[1]
            continue
        if c == "<":
            end = s.find(">", i + 1)
            i = n if end < 0 else end + 1
            continue
        i += 1
    return n


def _quoted(s: str, i: int) -> tuple[str, int]:
    """Parse a quoted-string starting at ``s[i] == '"'``; return (value, index after it).
    An unterminated string runs to the end."""
    out: list[str] = []
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), n


def _token(s: str, i: int) -> tuple[str, int]:
    j = i
    n = len(s)
    while j < n and s[j] not in _TOKEN_STOP:
        j += 1
    return s[i:j], j


def _parse_one(s: str, i: int) -> tuple[Link | None, int]:
    """Parse one link-value at ``s[i]`` (after whitespace). Returns (link or None if
    malformed, index after the link-value's comma)."""
    n = len(s)
    if i >= n or s[i] != "<":
        return None, _skip_to_comma(s, i)
    end = s.find(">", i + 1)
    if end < 0:
        return None, n
    target = s[i + 1 : end].strip()
    params: dict[str, str] = {}
    i = _skip_ws(s, end + 1)
    while i < n and s[i] == ";":
        i = _skip_ws(s, i + 1)
        name, i = _token(s, i)
        i = _skip_ws(s, i)
        value = ""
        if i < n and s[i] == "=":
            i = _skip_ws(s, i + 1)
            if i < n and s[i] == '"':
                value, i = _quoted(s, i)
            else:
                value, i = _token(s, i)
            i = _skip_ws(s, i)
        if name:
            params.setdefault(name.lower(), value)
    if i < n and s[i] != ",":
        return None, _skip_to_comma(s, i)
    rel = params.pop("rel", "")
    rels = tuple(r.lower() for r in rel.split())
    return Link(target, rels, params), min(i + 1, n)


def parse_link_header(values: str | Iterable[str]) -> list[Link]:
    """Every well-formed link in one ``Link`` header value, or in several (a response may
    carry the header more than once). Never raises on malformed input."""
    if isinstance(values, str):
        values = (values,)
    links: list[Link] = []
    for s in values:
        i = 0
        n = len(s)
        while i < n:
            i = _skip_ws(s, i)
            if i < n and s[i] == ",":  # empty list element (RFC 9110 §5.6.1)
                i += 1
                continue
            if i >= n:
                break
            link, i = _parse_one(s, i)
            if link is not None:
                links.append(link)
    return links


def find_rel(values: str | Iterable[str], rel: str) -> str | None:
    """The target of the first link whose relation types include ``rel`` (case-insensitive),
    or ``None``."""
    want = rel.lower()
    for link in parse_link_header(values):
        if want in link.rel:
            return link.target
    return None
