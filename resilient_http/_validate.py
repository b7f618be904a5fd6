"""Argument checks shared by every constructor: errors name the parameter, the value and
what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from resilient_http._clock import LOOP_CLOCK, Clock

__all__ = [
    "duration",
    "optional_duration",
    "positive_int",
    "ratio",
    "callable_or_none",
    "flag",
    "number",
    "clock_or_default",
    "session_like",
    "show",
    "names",
    "collection",
    "method_name",
]

_SHOWN = 120
"""Characters of a value shown in an error message."""


def show(value: Any) -> str:
    """``repr(value)`` for an error message: bounded, and never raising (an int past
    Python's digit limit, a broken ``__repr__``)."""
    try:
        text = repr(value)
    except Exception:
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} object>"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _finite(name: str, value: int | float, allowed: str) -> float:
    """``float(value)``; an int too large for a float is a ``ValueError`` naming ``name``."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be {allowed}, got {show(value)}") from None


def duration(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A duration in seconds from a ``float``/``int`` or a ``timedelta``; finite, > 0
    (>= 0 with ``allow_zero``)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _finite(name, value, "a finite number of seconds")
    else:
        raise TypeError(
            f"{name} must be a number of seconds or a timedelta, got {type(value).__name__} "
            f"{show(value)}"
        )
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {show(value)}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {show(value)}")
    return seconds


def optional_duration(name: str, value: Any, *, allow_zero: bool = False) -> float | None:
    """Like :func:`duration`, but ``None`` passes through (meaning "no limit")."""
    return None if value is None else duration(name, value, allow_zero=allow_zero)


def positive_int(
    name: str, value: Any, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """An ``int`` (not a ``bool``) >= ``minimum`` (and <= ``maximum`` when given)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {show(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {show(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {show(value)}")
    return value


def ratio(name: str, value: Any, *, low: float = 0.0, high: float = 1.0) -> float:
    """A finite number in ``[low, high]``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {show(value)}")
    if not (low <= value <= high):  # also rejects NaN (and compares huge ints exactly)
        raise ValueError(f"{name} must be between {low} and {high}, got {show(value)}")
    return float(value)


def callable_or_none(name: str, value: Any) -> Any:
    """``None`` or a callable."""
    if value is not None and not callable(value):
        raise TypeError(
            f"{name} must be callable or None, got {type(value).__name__} {show(value)}"
        )
    return value


def flag(name: str, value: Any) -> bool:
    """A ``bool`` (not merely a truthy value)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {show(value)}")
    return value


def clock_or_default(value: Any) -> Clock:
    """A :class:`~resilient_http.Clock`; ``None`` gives the event loop's (``LOOP_CLOCK``)."""
    if value is None:
        return LOOP_CLOCK
    if not isinstance(value, Clock):
        raise TypeError(f"clock must be a Clock (now, sleep, call_at), got {show(value)}")
    return value


def number(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = True) -> float:
    """A finite ``int``/``float`` (not a ``bool``) >= ``minimum`` (> with ``inclusive=False``)."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {show(value)}")
    number = _finite(name, value, f"a finite number {bound}")
    if not math.isfinite(number) or number < minimum or (number == minimum and not inclusive):
        raise ValueError(f"{name} must be a finite number {bound}, got {show(value)}")
    return number


def session_like(value: Any) -> Any:
    """A ``ClientSession`` or a ``wrap()`` result: anything with a callable ``request``."""
    if not callable(getattr(value, "request", None)):
        raise TypeError(
            f"session must be an aiohttp.ClientSession or a wrap() result (something with "
            f".request()), got {type(value).__name__}"
        )
    return value


def collection(name: str, value: Any, what: str) -> tuple[Any, ...]:
    """The items of a collection (any iterable but a lone ``str`` or ``bytes``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name} must be an iterable of {what}, got {type(value).__name__} {show(value)}"
        )
    return tuple(value)


def names(name: str, value: Any, *, what: str = "HTTP method names") -> frozenset[str]:
    """A collection of non-empty ASCII-letter tokens (HTTP method names), upper-cased."""
    out = set()
    for item in collection(name, value, f"{what} (e.g. ['GET'])"):
        if not isinstance(item, str):
            raise TypeError(
                f"{name} must hold {what} (str), got {type(item).__name__} {show(item)}"
            )
        if not item.isascii() or not item.isalpha():
            raise ValueError(f"{name} must be {what}, got {show(item)}")
        out.add(item.upper())
    return frozenset(out)


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
"""RFC 9110 token characters: what an HTTP method name is made of."""


def method_name(value: Any, name: str = "method") -> str:
    """An HTTP method name (a non-empty RFC 9110 token), upper-cased."""
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be an HTTP method name (str), got {type(value).__name__} {show(value)}"
        )
    if not value or not set(value) <= _TOKEN:
        raise ValueError(f"{name} must be an HTTP method name like 'GET', got {show(value)}")
    return value.upper()
