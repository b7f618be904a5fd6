"""Hypothesis strategies for hostile header text, shared by the fuzz harnesses."""

from __future__ import annotations

import email.utils
import json
from typing import Any

from hypothesis import strategies as st

# Longest run of digits the generators produce (values past Python's 4,300-digit int limit
# are tested on their own: test_parse_delta_longer_than_the_int_digit_limit, test_a_huge_age).
MAX_DIGITS = 40

digits = st.text("0123456789", min_size=1, max_size=MAX_DIGITS)
numbers = st.one_of(
    digits,
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["1e309", "0x10", "1_000", "\u0663", "\uff11\uff12", "+5", "-0", ".5", "5.", "1.5"]
    ),
)
_PIECES = [
    ",", ";", "=", '"', "\\", " ", "\t", "W/", "*", "<", ">", "(", ")", ".", "/",
    "max-age", "s-maxage", "no-cache", "no-store", "private", "public", "must-revalidate",
    "must-understand", "stale-if-error", "stale-while-revalidate", "immutable", "min-fresh",
    "max-stale", "proxy-revalidate", "rel", "next", "q", "w", "r", "t",
    "\u20ac", "\u00e9", "\x00", "\x7f", "\u0663", "\ufb00", "\ud7ff", "\U0001f600",
    "GMT", "Mon, ", "Jan", "1994", "00:00:00",
]
pieces = st.sampled_from(_PIECES)


def hostile(max_pieces: int = 12) -> st.SearchStrategy[str]:
    """Header-ish text: random Unicode, or a mix of syntax, numbers and odd characters."""
    return st.one_of(
        st.text(max_size=60),
        st.lists(st.one_of(pieces, numbers, st.text(max_size=4)), max_size=max_pieces).map(
            "".join
        ),
    )


def http_dates() -> st.SearchStrategy[str]:
    """HTTP-dates in the three formats, in and out of the usual range."""
    stamp = st.floats(min_value=-1e10, max_value=1e11, allow_nan=False)
    imf = stamp.map(lambda t: email.utils.formatdate(t, usegmt=True))
    return st.one_of(imf, hostile())


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value (moderately nested)."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10), inner, max_size=5),
        max_leaves=max_leaves,
    )


def json_bytes() -> st.SearchStrategy[bytes]:
    """Bodies a JSON API might send: JSON, truncated JSON, or random bytes."""
    encoded = json_values().map(lambda v: json.dumps(v).encode())
    return st.one_of(
        encoded,
        encoded.map(lambda b: b[: max(0, len(b) - 1)]),
        st.binary(max_size=40),
    )
